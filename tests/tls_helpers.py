"""A throwaway PKI for TLS tests, made with the ``openssl`` command (the ``cryptography`` package is not a
dependency): a CA, and server certificates it signs for the names a test needs."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCAL_NAMES = ("IP:127.0.0.1", "DNS:localhost")


@dataclass(frozen=True)
class Issued:
    """A server certificate (chain file) and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TestCA:
    """A CA (its certificate in ``cert``) that issues server certificates into ``directory``."""

    __test__ = False  # not a test class, despite the name

    directory: Path
    cert: Path
    key: Path

    def issue(self, name: str, names: tuple[str, ...] = LOCAL_NAMES, *, days: int = 2) -> Issued:
        """A certificate for ``names`` (subjectAltName entries: ``IP:127.0.0.1``), signed by this CA."""
        key, csr, cert = (self.directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName = {', '.join(names)}\n"
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid\n"
        )
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
        _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", str(extensions), "-out", str(cert),
        )  # fmt: skip
        return Issued(cert, key)


def make_ca(directory: Path, name: str = "beamlink test CA") -> TestCA:
    """A fresh self-signed CA in ``directory`` (skips the test when there is no ``openssl`` command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    slug = name.replace(" ", "-")
    key, cert = directory / f"{slug}.key", directory / f"{slug}.pem"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    _openssl(
        "req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "2", "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash", "-out", str(cert),
    )  # fmt: skip
    return TestCA(directory, cert, key)


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")
