"""Local processes with a log file, a process group of their own, and a bounded stop."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from tests.cluster import errors

_SETPRIV = shutil.which("setpriv")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (it may be taken again before use: see StartupError)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent_prefix() -> list[str]:
    """An argv prefix that SIGKILLs the process when the thread that started it dies.

    It guards against leaks when the test runner itself is killed (e.g. by a hard timeout) before it can stop
    its children. Linux sends the signal when the *thread* that forked ends, so start processes from a thread
    that outlives them (the main thread, or a thread that waits for its process).
    """
    return [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


@dataclasses.dataclass(eq=False)
class ManagedProcess:
    """A child process in its own process group (session), with its output in ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: pathlib.Path
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: pathlib.Path,
        env: Mapping[str, str] | None = None,
        cwd: pathlib.Path | None = None,
        die_with_parent: bool = True,
    ) -> ManagedProcess:
        """Start ``argv`` with stdout and stderr appended to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        prefix = die_with_parent_prefix() if die_with_parent else []
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [*prefix, *map(str, argv)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        return cls(name=name, popen=popen, log_path=log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: killed by that signal), or None while it runs."""
        return self.popen.poll()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group (the process and anything it spawned), if alive."""
        with self._lock:
            if self.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signum)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        try:
            with self.log_path.open("rb") as log:
                tail = collections.deque(log, maxlen=lines)
        except FileNotFoundError:
            return "(no log)"
        return b"".join(tail).decode(errors="replace").rstrip() or "(empty log)"

    def checked[T](self, predicate: Callable[[], T]) -> Callable[[], T]:
        """``predicate``, but raising :class:`StartupError` first if the process has exited (for wait_for)."""

        def check() -> T:
            self.raise_if_exited()
            return predicate()

        return check

    def raise_if_exited(self, *, during: str = "while starting") -> None:
        """Raise :class:`StartupError` with the log's tail if the process has already exited."""
        code = self.popen.poll()
        if code is not None:
            tail = self.log_tail()
            raise errors.StartupError(
                f"{self.name} exited with code {code} {during}; the end of {self.log_path}:\n{tail}",
                port_conflict="address already in use" in tail,
            )


def stop_all(processes: Iterable[ManagedProcess], *, timeout: float) -> None:
    """SIGTERM every process at once, then SIGKILL those still alive after ``timeout`` seconds, and reap all."""
    alive = [process for process in processes if process.returncode is None]
    for process in alive:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in alive:
        try:
            process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.signal(signal.SIGKILL)
    for process in alive:
        process.popen.wait()
        # The group may still hold grandchildren of a process that exited on SIGTERM by itself.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
