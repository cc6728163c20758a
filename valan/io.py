"""Reading user files with clear errors, and writing files atomically (temporary file, then rename)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any, Iterator

from valan.errors import InputError

# errno -> what the one-line message says (other OS errors give the system's own text)
_REASONS = {errno.ENOENT: "file not found", errno.EISDIR: "is a directory, not a file",
            errno.ENOTDIR: "a parent of the path is a file, not a folder",
            errno.EEXIST: "exists and is not a folder", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.EROFS: "read-only file system",
            errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}


def os_error(e: OSError, path: str | os.PathLike, action: str = "") -> InputError:
    """The one-line ``InputError`` for the OS error ``e`` on ``path``: ``"<path>: cannot write: permission
    denied"``. ``action`` ("cannot read", "cannot write") leads the reason."""
    reason = _REASONS.get(e.errno, e.strerror or type(e).__name__)
    return InputError(f"{action}: {reason}" if action else reason, source=os.fsdecode(path))


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Turn what can go wrong while reading the text file ``path`` into one ``InputError`` naming it: OS errors
    (missing, a directory, unreadable, ...), bytes that are not UTF-8, and nesting too deep to parse."""
    try:
        yield
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
    except OSError as e:
        raise os_error(e, path, "cannot read") from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start} is {e.object[e.start:e.start + 1]!r})",
                         source=str(path)) from None
    except RecursionError:
        raise InputError("nested too deeply to read", source=str(path)) from None


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of ``path``; ``InputError`` naming it when it cannot be read (:func:`reading`)."""
    with reading(path):
        return Path(path).read_text(encoding="utf-8")


def _problem(error: json.JSONDecodeError) -> str:
    """The decoder's message without its dangling "at" (``json`` appends the position to "... starting at")."""
    return error.msg.removesuffix(" at")


def read_json(path: str | os.PathLike) -> Any:
    """Load a JSON file, turning a missing file or malformed JSON into an ``InputError``."""
    path = Path(path)
    with reading(path):
        with path.open(encoding="utf-8") as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as e:
                raise InputError(f"malformed JSON at line {e.lineno} column {e.colno}: {_problem(e)}",
                                 source=str(path)) from None


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Load a JSON-lines file (one object per non-empty line)."""
    path = Path(path)
    records = []
    with reading(path):
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"malformed JSON on line {lineno} column {e.colno}: {_problem(e)}",
                                     source=str(path)) from None
    return records


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success rename it over ``path``, on error remove it.

    Readers never see a half-written file, and a failed run leaves no file (nor the folders made for it) behind.
    OS errors (read-only or full disk, a parent path that is a file, ``path`` a directory, ...) become one
    ``InputError`` naming ``path``; the file already there is left as it was.
    """
    path = Path(path)
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]  # innermost first
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # here: reading (valan evaluate) should not pay its import

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # naming a parent folder that cannot be made, else the destination (not a temporary)
        _remove_empty(made)
        failed = None if e.filename is None else Path(os.fsdecode(e.filename))
        raise os_error(e, path if failed is None or failed.parent == path.parent else failed,
                       "cannot write") from None
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_empty(made)
        if isinstance(e, OSError) and e.filename in (None, tmp):  # writing or renaming this file failed
            raise os_error(e, path, "cannot write") from None
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed write made (innermost first), leaving any that hold something by now."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")
