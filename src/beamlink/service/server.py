"""Running the service for real: checks before binding, migrations, then uvicorn on a bound socket."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Iterator

import uvicorn

from beamlink.config import Settings
from beamlink.errors import StartupError
from beamlink.service.app import create_app
from beamlink.service.bootstrap import prepare_database
from beamlink.service.db.engine import Database, ensure_sqlite_path
from beamlink.service.logs import configure_logging

__all__ = ["bind_socket", "serve"]

log = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port is reported by name before any other work, and no one takes it meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use: stop the other process (is a beamlink server "
                f"running?) or choose another port with --port or BEAMLINK_PORT",
                details={"host": host, "port": port},
            ) from exc
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror}", details={"host": host, "port": port}
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die of the signal; a
    clean shutdown should exit 0, as service managers expect."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; uvicorn finishes in-flight requests, then the app closes the database."""
    configure_logging(settings.log_level, settings.log_format)
    ensure_sqlite_path(settings.effective_database_url)
    sock = bind_socket(settings.host, settings.port)
    if settings.port == 0:
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    database = Database(settings.effective_database_url)
    try:
        prepare_database(settings, database)
    finally:
        database.dispose()
    app = create_app(settings, prepare=False)
    # No per-message deflate on agent WebSockets: task frames are small or already-packed payloads, and
    # compressing each one cost more CPU than the loopback/LAN bytes it saved (docs/architecture.md).
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
        ws_per_message_deflate=False,
        # A frame carries at least one task's arguments or result, whose limits are settings.
        ws_max_size=max(
            16 * 2**20, settings.compute_payload_limit + 2**20, settings.compute_result_limit + 2**20
        ),
    )
    server = _Server(config)
    log.info("listening on %s:%s", settings.host, settings.port)
    server.run(sockets=[sock])
