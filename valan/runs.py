"""Run folders have one owner: a lock held for the run's life, no second run mixed into an old one, no leftovers.

Every trainer (``valan train`` and the supervised ``train-discriminator``, ``pretrain-alignment``, ``train-sdr``)
claims its ``--out`` folder with :class:`RunFolder` before it writes anything there:

- **Lock.** ``<out>/run.lock`` is ``flock``-ed for the run's life and names its owner (pid, host, start time).
  A second run on the folder fails at once with one line naming the owner. The kernel drops the lock when the
  owner dies however it dies, so a lock file left by a killed run is *stale*: the next run reports it and takes
  the folder over. A clean exit removes the file.
- **Ownership.** A folder that holds a run (``config.yaml`` or ``checkpoints/``) is refused unless the new run
  continues it (``resume``) or starts over (``overwrite``: the old run's files are moved, not deleted, to the
  sibling folder ``<out>.previous-<UTC time>``).
- **Leftovers.** Temporary files of writes a killed run never finished (``.<name>.<random>.tmp``, see
  :func:`valan.io.atomic_write`) are removed.

What the claim did (stale lock reclaimed, old run moved aside, temporary files removed) is in ``notes``: one line
each, for the command to print.

Also here, for the run's life: :func:`stop_on_signals` (SIGINT/SIGTERM become :class:`Stopped`, so trainers save a
checkpoint before exiting with ``128 + signum``) and :func:`stderr_to_file` (native libraries' log lines, such as
Ray's, go to the run's log file instead of the console).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from valan.errors import InputError
from valan.io import os_error

LOCK_NAME = "run.lock"
RUN_MARKERS = ("config.yaml", "checkpoints")  # a folder with one of these holds a run
TEMPORARY_GLOB = ".*.tmp"  # valan.io.atomic_write's temporary files


def holds_run(folder: str | os.PathLike) -> list[str]:
    """The entries of ``folder`` that show it holds a run (empty: it holds none)."""
    folder = Path(folder)
    return [name for name in RUN_MARKERS if (folder / name).exists()]


def remove_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left anywhere under ``folder``; returns them."""
    removed = []
    for path in sorted(Path(folder).rglob(TEMPORARY_GLOB)):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _owner_text(record: dict) -> str:
    started = record.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(started, (int, float)) else ""
    return f"pid {record.get('pid', '?')} on host {record.get('host', '?')}{when}"


class RunLock:
    """An exclusive ``flock`` on ``path`` naming its holder; see the module docstring."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None
        self.stale: dict | None = None  # the record of a dead owner whose lock file this one took over

    def acquire(self) -> RunLock:
        """Take the lock or raise ``InputError`` naming the live owner."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = _read_record(fd)
                os.close(fd)
                raise InputError(f"the run folder is in use by another run ({_owner_text(record)}); wait for it to "
                                 "end or choose another --out", source=str(self.path.parent)) from None
            # The previous owner may have removed the file between our open and flock: lock the file now there.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)
        previous = _read_record(fd)
        self.stale = previous or None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (the file goes first, so nobody locks a file being removed)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _read_record(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 4096)
    try:
        record = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        record = {"pid": "?"}
    return record if isinstance(record, dict) else {"pid": "?"}


class RunFolder:
    """Claim ``folder`` for one run (a context manager; see the module docstring).

    ``resume``: continue the run the folder holds. ``overwrite``: move the run it holds aside and start over.
    Neither: the folder must hold no run. ``InputError`` (one line) when the folder is in use or refused; the
    folder is then left as it was.
    """

    def __init__(self, folder: str | os.PathLike, resume: bool = False, overwrite: bool = False):
        if resume and overwrite:
            raise InputError("--resume and --overwrite exclude each other")
        self.folder = Path(folder)
        self.resume, self.overwrite = resume, overwrite
        self.notes: list[str] = []
        self.lock = RunLock(self.folder / LOCK_NAME)

    def __enter__(self) -> RunFolder:
        existed = self._existed = self.folder.is_dir()
        self._made = not existed
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_error(e, self.folder, "cannot create the run folder") from None
        try:
            self.lock.acquire()
        except BaseException:
            if not existed:
                with contextlib.suppress(OSError):
                    (self.folder / LOCK_NAME).unlink(missing_ok=True)
                    self.folder.rmdir()
            raise
        try:
            self._claim()
        except BaseException:
            self.lock.release()
            raise
        return self

    def _claim(self) -> None:
        if self.lock.stale:
            self.notes.append(f"{self.lock.path}: took over a stale lock: its run ({_owner_text(self.lock.stale)}) "
                              "ended without releasing it")
        found = holds_run(self.folder)
        if found and not self.resume:
            if not self.overwrite:
                listed = ", ".join(found)
                raise InputError(f"holds another run ({listed}): continue it with --resume, or start over with "
                                 "--overwrite (the old run is moved to a sibling folder <name>.previous-<time>)",
                                 source=str(self.folder))
            self.notes.append(f"moved the previous run to {self._move_aside()}")
        removed = remove_temporary_files(self.folder)
        if removed:
            self.notes.append(f"removed {len(removed)} temporary file(s) an interrupted write left in {self.folder}")

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        target = self.folder.with_name(f"{self.folder.name}.previous-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.folder.with_name(f"{self.folder.name}.previous-{stamp}-{n}")
        target.mkdir()
        for entry in self.folder.iterdir():
            if entry.name != LOCK_NAME:
                entry.rename(target / entry.name)
        return target

    def __exit__(self, *exc) -> None:
        """Release the lock; a folder this claim created and the run left empty (it failed at once) goes too."""
        self.lock.release()
        if not self._existed:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty
        if self._made:  # a run that failed before writing anything (bad input) leaves no folder behind
            with contextlib.suppress(OSError):
                self.folder.rmdir()


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the run to stop (:func:`stop_on_signals`); ``signum`` says which. Being a
    ``KeyboardInterrupt``, it unwinds through code that cleans up after Ctrl-C; the trainers save a checkpoint
    first. The conventional exit status is ``128 + signum`` (130, 143)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Received:
    signum: int | None = None  # the first SIGINT or SIGTERM received


@contextlib.contextmanager
def stop_on_signals() -> Iterator[_Received]:
    """Turn the first SIGINT or SIGTERM into :class:`Stopped` in the main thread; later ones are ignored while
    the run saves and shuts down. The previous handlers come back afterwards.

    Yields what was received (``signum``): native code that the signal interrupts (Ray's waits) may turn the
    exception into a plain ``KeyboardInterrupt``, so callers catch that and read the signal from here.
    """
    received = _Received()

    def handler(signum: int, frame: object) -> None:
        if received.signum is None:
            received.signum = signum
            raise Stopped(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def stderr_to_file(path: str | os.PathLike, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """Send what is written to file descriptor 2 (native libraries' log lines, loggers bound to the original
    stderr) to the end of ``path`` while ``sys.stderr`` (progress bars, valan's own messages) stays on the
    console. Yields ``log(line)``, which appends a line to ``path`` (with ``enabled=False`` nothing is
    redirected and ``log`` does nothing)."""
    if not enabled:
        yield lambda line: None
        return
    sys.stderr.flush()
    console = os.dup(2)
    try:
        with open(path, "ab") as file:
            os.dup2(file.fileno(), 2)
    except OSError as e:
        os.close(console)
        raise os_error(e, path, "cannot write") from None
    original = sys.stderr
    sys.stderr = os.fdopen(os.dup(console), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    try:
        yield lambda line: os.write(2, (line.rstrip("\n") + "\n").encode("utf-8", "backslashreplace"))
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = original
        os.dup2(console, 2)
        os.close(console)
