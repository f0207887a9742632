"""A small supervisor for the service processes of the embedded stack.

Each service runs in its own session (``start_new_session=True``) so that it
outlives the ``codereview up`` command that started it and so that one
``killpg`` reaches every process it spawned. Output goes to a log file under
the state dir; when a service dies or never becomes ready, the error carries
the end of that log, because that is where the real reason is (a taken port,
a locked data dir) and nobody should have to go looking for it.

A process can be driven from another Python process than the one that
started it (``ManagedProcess.attach``): ``codereview down`` only has the pids
recorded in ``stack.json``. The recorded start time guards against a reused
pid: a process whose start time differs is not ours and is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from schemas.errors import CodeReviewError

LOG_TAIL_LINES = 30
_POLL_S = 0.1
# psutil rounds start times; a recorded one within this is the same process.
_START_TIME_TOLERANCE_S = 1.0


class StackError(CodeReviewError):
    """The embedded stack (or a configured service) could not be started, reached or stopped."""


class ManagedProcess:
    """One service process: start it, wait until it answers, stop its whole group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.pid: int | None = None
        self.start_time: float | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def attach(
        cls, name: str, pid: int, log_path: Path, start_time: float | None = None
    ) -> ManagedProcess:
        """A handle on a process another command started (its pid read from ``stack.json``)."""
        proc = cls(name, [], log_path)
        proc.pid = pid
        proc.start_time = start_time
        return proc

    def start(self) -> None:
        """Launch the process in a new session, stdout and stderr to the log file."""
        if self.pid is not None:
            raise StackError(f"{self.name} was already started (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env} if self.env is not None else None
        with self.log_path.open("ab") as log:
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StackError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc
        self.pid = self._popen.pid
        self.start_time = _start_time(self.pid)

    def alive(self) -> bool:
        """Whether the process runs (a zombie or a different process on a reused pid does not)."""
        if self.pid is None:
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        _reap(self.pid)
        try:
            proc = psutil.Process(self.pid)
            # A zombie leader whose other threads still run is still dying (and
            # may still hold its ports); a lone zombie waits only for a reaper.
            if proc.status() == psutil.STATUS_ZOMBIE and proc.num_threads() <= 1:
                return False
            started = proc.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        return self.start_time is None or abs(started - self.start_time) < _START_TIME_TOLERANCE_S

    def wait_ready(self, check: Callable[[], bool], timeout_s: float) -> None:
        """Poll ``check`` until it says yes; fail with the log tail if the process dies first."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                raise StackError(
                    f"{self.name} (pid {self.pid}) exited before it was ready"
                    f"{self._exit_note()}; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if check():
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{self.name} (pid {self.pid}) was not ready after {timeout_s:.0f} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(_POLL_S)

    def stop(self, timeout_s: float = 10) -> None:
        """SIGTERM the process group, SIGKILL it if it outstays ``timeout_s``; idempotent."""
        if self.pid is None:
            return
        if not self.alive():
            # Mop up children the leader left behind; a dead group is fine.
            self._signal_group(signal.SIGKILL)
            return
        self._signal_group(signal.SIGTERM)
        if self._wait_dead(timeout_s):
            self._signal_group(signal.SIGKILL)
            return
        self._signal_group(signal.SIGKILL)
        if not self._wait_dead(5.0):
            raise StackError(f"{self.name} (pid {self.pid}) survived SIGKILL")

    def kill(self) -> None:
        """SIGKILL the process group at once: what a crash looks like to the others."""
        if self.pid is None:
            return
        self._signal_group(signal.SIGKILL)
        if not self._wait_dead(5.0):
            raise StackError(f"{self.name} (pid {self.pid}) survived SIGKILL")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log, or a note that there is none."""
        try:
            with self.log_path.open("r", encoding="utf-8", errors="replace") as log:
                return "".join(deque(log, maxlen=lines)).rstrip() or "(log is empty)"
        except FileNotFoundError:
            return "(no log file)"

    def _exit_note(self) -> str:
        if self._popen is not None and self._popen.returncode is not None:
            return f" with code {self._popen.returncode}"
        return ""

    def _signal_group(self, sig: signal.Signals) -> None:
        # start_new_session made the process its group leader: pgid == pid.
        # A pid recorded by someone else is only signalled when still ours.
        assert self.pid is not None
        if self._popen is None and self.start_time is not None and _is_foreign(self):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _wait_dead(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _is_foreign(proc: ManagedProcess) -> bool:
    """True when the pid now belongs to another process than the one recorded."""
    assert proc.pid is not None and proc.start_time is not None
    started = _start_time(proc.pid)
    return started is not None and abs(started - proc.start_time) >= _START_TIME_TOLERANCE_S


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own dead child, so it is no zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (a bound but idle socket counts as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers set it, so a port in TIME_WAIT still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return not port_open(host, port)


def port_taken_error(port: int, what: str) -> StackError:
    """The error for a configured port that is already in use, naming who wanted it."""
    return StackError(
        f"port {port} is already in use, so {what} cannot listen on it: stop whatever holds "
        f"it (e.g. `ss -ltnp 'sport = :{port}'`) or configure another port (0 picks a free one)"
    )


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Fail before starting anything when ``what``'s port is taken."""
    if not port_free(host, port):
        raise port_taken_error(port, what)
