"""A small blocking HTTP/1.1 client for the data plane: keep-alive connections, bodies read straight
into the caller's buffer, used from the transfer's worker threads.

Why not httpx: on the 2-vCPU test VM, httpx's async streaming of 64 MiB ranges from a local uvicorn ran
at 0.15-0.35 GB/s (anyio, httpcore and h11 cost ~150 µs per 64 KiB piece), while ``recv_into`` a reused
1 MiB buffer from worker threads ran at ~1 GB/s against the same server: the difference between
meeting the 1 GB/s loopback target and missing it fourfold. The data plane only talks to beamlink data
servers, so this client does what they need: Content-Length and chunked bodies, keep-alive, http and
https. Blocking sockets in threads also let the kernel copies, the hashing (xxhash and blake3 release
the GIL) and the file writes of several chunks overlap.

Every transport problem (refused, reset, timed out, a body cut short, a garbled response) is a
:class:`DataServerUnreachable`: transient, worth a retry. TLS that cannot work as configured (a
certificate this agent does not trust or that names another host, http spoken to an https server or the
reverse) is its subclass :class:`DataServerTlsError`, which is not: retrying cannot fix a configuration.

https: the socket is wrapped in an :class:`ssl.SSLContext` (from :func:`client_tls_context`: the
server's certificate and host name verified, TLS 1.2 at least). ``SSLSocket.recv_into`` fills the
caller's buffer just as a plain socket's does (the record is decrypted straight into it), so the hot
path is unchanged apart from the cipher's cost.
"""

from __future__ import annotations

import functools
import io
import os
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from typing import ClassVar, cast
from urllib.parse import urlsplit

from beamlink.errors import InvalidInput, ServiceUnavailable

__all__ = [
    "ConnectionPool",
    "DataServerTlsError",
    "DataServerUnreachable",
    "HttpResponse",
    "client_tls_context",
]

_READ_BUFFER = 256 << 10
_MAX_LINE = 64 << 10
_MAX_HEADERS = 100


class DataServerUnreachable(ServiceUnavailable):
    """The source's data server could not be reached, or a response broke off (transient: retried)."""

    code = "DATA_SERVER_UNREACHABLE"
    status = 503
    #: Whether trying again may help (see :func:`beamlink.agents.collection.sources.is_transient`).
    transient: ClassVar[bool] = True


class DataServerTlsError(DataServerUnreachable):
    """TLS with the data server cannot work as configured: a certificate this agent does not trust (or
    issued for another host, or expired), or one side speaking TLS and the other not. Not transient."""

    code = "DATA_SERVER_TLS_ERROR"
    status = 503
    transient: ClassVar[bool] = False


# OpenSSL's reasons when the peer is not speaking TLS at all (a plain-http server answering a handshake).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"})
# X509 verify codes that are about the name or the dates rather than about who signed the certificate.
_NAME_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_EXPIRED = frozenset({9, 10})  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED


@functools.lru_cache(maxsize=8)
def client_tls_context(ca_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A context for pulling from https data servers: certificate chain and host name verified against
    ``ca_file``'s CAs (only those) or, without one, the system's; TLS 1.2 at least.

    Cached per ``ca_file`` (loading the system's CAs takes milliseconds, and every transfer asks): the
    context is shared, so do not change it. A changed CA file is read again when the agent restarts.
    """
    context = ssl.create_default_context(cafile=os.fspath(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Connection:
    """One socket and its buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile = cast(io.BufferedReader, sock.makefile("rb", buffering=_READ_BUFFER))
        self.reused = False

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()


class HttpResponse:
    """A response whose head is read; the body is read with :meth:`readinto`, :meth:`read` or :meth:`lines`.

    Use as a context manager (or call :meth:`close`): a fully read body returns the connection to its
    pool, anything else closes it.
    """

    def __init__(
        self, pool: ConnectionPool, conn: _Connection, status: int, headers: dict[str, str], method: str
    ) -> None:
        self.status = status
        self.headers = headers
        self._pool = pool
        self._conn: _Connection | None = conn
        self._keep_alive = headers.get("connection", "").lower() != "close"
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._left: int | None = None
        self._chunk_left = 0
        self._done = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if not self._chunked and not self._done:
            length = headers.get("content-length")
            if length is None:
                self._keep_alive = False  # delimited by the server closing the connection
            else:
                try:
                    self._left = int(length)
                except ValueError:
                    raise DataServerUnreachable(
                        f"bad Content-Length {length!r} from the data server"
                    ) from None
                self._done = self._left == 0
        self._lines: io.BufferedReader | None = None

    @property
    def complete(self) -> bool:
        """Whether the whole body has been read."""
        return self._done

    def readinto(self, view: memoryview) -> int:
        """Read body bytes into ``view`` (filling it when the body has that many); 0 at the end."""
        if self._done or not len(view):
            return 0
        rfile = self._reader()
        try:
            if self._chunked:
                if self._chunk_left == 0 and not self._next_chunk(rfile):
                    return 0
                got = rfile.readinto(view[: self._chunk_left])
                self._chunk_left -= got
                if got and self._chunk_left == 0 and rfile.read(2) != b"\r\n":
                    raise DataServerUnreachable("a chunk of the data server's response is malformed")
            elif self._left is not None:
                got = rfile.readinto(view[: self._left])
                self._left -= got
                self._done = self._left == 0
            else:
                got = rfile.readinto(view)
                self._done = got == 0
                return got
        except OSError as exc:
            raise DataServerUnreachable(f"the connection to the data server broke: {exc}") from exc
        if got == 0:
            raise DataServerUnreachable("the data server closed the connection in the middle of a response")
        return got

    def read(self, limit: int = 256 << 20) -> bytes:
        """The rest of the body (at most ``limit`` bytes: a larger body is an error)."""
        data = self.stream().read(limit + 1)
        if len(data) > limit:
            raise InvalidInput(f"the data server's response is over {limit} bytes")
        return data

    def stream(self) -> io.BufferedReader:
        """The body as a buffered binary stream (``readline``, ``read(n)``) for framed formats."""
        if self._lines is None:
            self._lines = io.BufferedReader(_BodyIO(self), buffer_size=_READ_BUFFER)
        return self._lines

    def line_blocks(self) -> Iterator[bytes]:
        """The body's lines as they arrive, many to a block: each block is whole lines (each with its
        newline; the body's last line perhaps without), so a reader parses a block at once instead of
        a line at a time. DataServerUnreachable for a line over 64 KiB."""
        stream = self.stream()
        rest = b""
        while block := stream.read1(_READ_BUFFER):
            cut = block.rfind(b"\n") + 1
            if cut:
                yield rest + block[:cut]
                rest = block[cut:]
            else:
                rest += block
            if len(rest) > _MAX_LINE:
                raise DataServerUnreachable(f"the data server sent a line of over {_MAX_LINE} bytes")
        if rest:
            yield rest

    def close(self) -> None:
        """Give the connection back when the body was read to its end, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep_alive:
            self._pool.release(conn)
        else:
            conn.close()

    def __enter__(self) -> HttpResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reader(self) -> io.BufferedReader:
        if self._conn is None:
            raise ValueError("the response is closed")
        return self._conn.rfile

    def _next_chunk(self, rfile: io.BufferedReader) -> bool:
        line = rfile.readline(_MAX_LINE)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise DataServerUnreachable(
                f"bad chunk size {line[:40]!r} from the data server (connection cut?)"
            ) from None
        if size == 0:
            while (trailer := rfile.readline(_MAX_LINE)) not in (b"\r\n", b"\n"):
                if not trailer:
                    raise DataServerUnreachable("the data server closed the connection in a response")
            self._done = True
            return False
        self._chunk_left = size
        return True


class _BodyIO(io.RawIOBase):
    """A response body as a raw stream, so :class:`io.BufferedReader` does the line splitting in C."""

    def __init__(self, response: HttpResponse) -> None:
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._response.readinto(memoryview(buffer).cast("B"))


class ConnectionPool:
    """Keep-alive connections to one data server, shared by threads (each request owns one connection)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        max_idle: int = 64,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls`` is the context for an https ``base_url`` (default: :func:`client_tls_context`, the
        system's CAs); a plain http URL ignores it."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"a data server URL is http(s)://host:port, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._tls = (tls or client_tls_context()) if parts.scheme == "https" else None
        self._host_header = parts.netloc.rsplit("@", 1)[-1]
        self._idle: deque[_Connection] = deque()
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._closed = False

    def request(
        self, method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> HttpResponse:
        """Send a request and read the response head. A kept-alive connection the server closed in the
        meantime is replaced once, transparently (the request never reached the application)."""
        head = self._head(method, target, headers or {}, body)
        while True:
            try:
                conn = self._acquire()
            except ssl.SSLError as exc:
                raise self._tls_problem(exc) from exc
            except OSError as exc:
                raise DataServerUnreachable(
                    f"cannot reach the data server at {self.base_url}: {exc}", details={"url": self.base_url}
                ) from exc
            try:
                conn.sock.sendall(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    conn.sock.sendall(body)
                return self._response(conn, method)
            except (OSError, DataServerUnreachable) as exc:
                conn.close()
                if conn.reused and _before_response(exc):
                    continue
                if not conn.reused and _before_response(exc) and self._tls is None and self._speaks_tls():
                    raise DataServerTlsError(
                        f"the data server at {self.base_url} serves https, not plain http: use "
                        f"https://{self._host_header} (its agent advertises the right URL when it connects: "
                        "restart the source's agent if its address is stale)",
                        details={"url": self.base_url},
                    ) from exc
                if isinstance(exc, DataServerUnreachable):
                    raise
                raise DataServerUnreachable(
                    f"cannot reach the data server at {self.base_url}: {exc}",
                    details={"url": self.base_url},
                ) from exc

    def release(self, conn: _Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                conn.reused = True
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close idle connections; connections in use close when their response does."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            conn.close()

    def _acquire(self) -> _Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _speaks_tls(self) -> bool:
        """Whether the server completes a TLS handshake: asked only after it hung up on a fresh plain-http
        request, which is what a TLS server does with one. Nothing is sent after the handshake, so not
        verifying the certificate here reveals nothing."""
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=min(self.timeout, 5.0)) as sock,
                probe.wrap_socket(sock, server_hostname=self.host),
            ):
                return True
        except OSError:  # ssl.SSLError included: not TLS either
            return False

    def _tls_problem(self, exc: ssl.SSLError) -> DataServerUnreachable:
        """A failed handshake as an error that names the URL and the fix; transient only when it does not
        look like configuration (an EOF or reset mid-handshake: the server restarting, say)."""
        details = {"url": self.base_url}
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = (exc.verify_message or exc.reason or str(exc)).rstrip(".")
            if exc.verify_code in _NAME_MISMATCH:
                fix = (
                    f"its certificate is not issued for {self.host!r}: give the source's data server a "
                    "certificate whose subjectAltName includes that name, or set its advertise_url to a name "
                    "the certificate carries"
                )
            elif exc.verify_code in _EXPIRED:
                fix = "its certificate is outside its validity dates: renew the source's tls.cert_file"
            else:
                fix = (
                    "this agent does not trust the CA that signed its certificate: add that CA's certificate "
                    "(PEM) to tls.ca_file in this collection's config.yaml and restart the agent"
                )
            return DataServerTlsError(
                f"TLS certificate of the data server at {self.base_url} rejected ({why}); {fix}",
                details={**details, "verify_code": exc.verify_code},
            )
        if exc.reason in _NOT_TLS:
            return DataServerTlsError(
                f"the data server at {self.base_url} does not speak TLS (https): it serves plain http; give "
                "it a tls.cert_file and tls.key_file, or advertise it with http://",
                details=details,
            )
        return DataServerUnreachable(
            f"TLS handshake with the data server at {self.base_url} failed: {exc.reason or exc}",
            details=details,
        )

    def _head(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {self.prefix}{target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _response(self, conn: _Connection, method: str) -> HttpResponse:
        rfile = conn.rfile
        status_line = rfile.readline(_MAX_LINE)
        if not status_line:
            raise _Closed("the data server closed the connection before answering")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise DataServerUnreachable(f"not an HTTP response from the data server: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            line = rfile.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n"):
                return HttpResponse(self, conn, int(parts[1]), headers, method)
            if not line:
                raise DataServerUnreachable("the data server closed the connection in a response head")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raise DataServerUnreachable(f"the data server sent more than {_MAX_HEADERS} headers")


class _Closed(DataServerUnreachable):
    """The peer closed before answering: on a reused keep-alive connection, simply try a fresh one."""


def _before_response(exc: BaseException) -> bool:
    return isinstance(exc, _Closed | BrokenPipeError | ConnectionResetError)
