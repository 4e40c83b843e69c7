"""beamlink: link scientific instruments to computation, self-hosted.

Layout by where code runs: ``service/`` (the web service), ``agents/`` (endpoint and collection daemons),
``sdk/`` (user code), ``cli/`` (the ``beamlink`` command); ``protocol/``, ``flowlang/`` and ``errors`` are
shared and pure.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("beamlink")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
