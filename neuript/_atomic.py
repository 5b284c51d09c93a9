"""Atomic file writes, used by every layer that writes stores, checkpoints, reports or plots.

A file is written to a temporary name in the *same* directory and moved over the destination with
:func:`os.replace`, which is atomic on POSIX and Windows: a reader (or a resumed run) sees the old complete file
or the new complete file, never a truncated one, whenever the writing process is killed.

``fsync`` additionally makes the data durable across a power loss or kernel crash, at a cost that can be large
on some file systems (it doubled the wall time of preparing EEGMAT here). It defaults to the environment
variable ``NEURIPT_FSYNC`` (off unless set to 1); callers that write rarely (checkpoints, reports) pass
``fsync=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import json
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

__all__ = ["FSYNC", "OutputError", "atomic_write", "atomic_write_text", "atomic_write_json", "atomic_path", "atomic_directory",
           "to_jsonable"]

FSYNC = os.environ.get("NEURIPT_FSYNC", "0").lower() not in ("0", "", "false", "no")


class OutputError(OSError):
    """An output location that cannot be written (full disk, read-only file system, quota): the message names the
    output and the fix; the command prints it as one line (``PermissionError`` keeps its own type)."""


#: errors of the output *location* (not of the program): full disk, read-only mount, quota, no permission
_LOCATION_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG}


def _unwritable(path: Path, err: OSError) -> OSError:
    kind = "the disk is full" if getattr(err, "errno", None) == errno.ENOSPC else (err.strerror or str(err))
    cls = PermissionError if isinstance(err, PermissionError) else OutputError
    return cls(err.errno, f"cannot write {path}: {kind}. Choose a writable location (e.g. --out DIR); "
                          "nothing was written and earlier outputs are unchanged")


def _is_location_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and not isinstance(err, OutputError) and err.errno in _LOCATION_ERRNOS


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that want a file name rather than a file object (``safetensors.save_file``, ``savefig``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # read-only or full location: say which output, not which temporary name
        raise _unwritable(path, e) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)  # mkstemp creates 0o600
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _is_location_error(e):  # the disk filled up or the location turned read-only while writing / renaming
            raise _unwritable(path, e) from None
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces the directory ``path`` (the old one is moved
    aside first and removed after), on error it is removed and ``path`` is left as it was.

    The swap is two renames: a process killed between them leaves the previous complete directory as
    ``.<name>.old`` beside a missing ``path`` (never a half-written one)."""
    import shutil

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: str | os.PathLike, writer: Callable[[IO[bytes]], Any], *, fsync: bool | None = None,
                 mode: int = 0o644) -> Path:
    """Write ``path`` atomically: ``writer`` gets a binary file object and writes the whole content.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its parent directory is created if missing.
    writer : callable
        Called with the open temporary file.
    fsync : bool, optional
        Flush to disk before the rename (default: ``NEURIPT_FSYNC``).
    mode : int
        Permission bits of the new file.
    """
    path = Path(path)
    with atomic_path(path, mode=mode) as tmp:
        with open(tmp, "wb") as fh:
            writer(fh)
            if FSYNC if fsync is None else fsync:
                fh.flush()
                os.fsync(fh.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool | None = None,
                      encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    data = text.encode(encoding)
    return atomic_write(path, lambda fh: fh.write(data), fsync=fsync)


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` into something :func:`json.dumps` accepts with ``allow_nan=False``.

    Non-finite floats become ``None`` (JSON ``null``); numpy scalars/arrays, tuples and sets become Python
    numbers/lists; mapping keys become strings; paths, datetimes and dataclasses are converted; any other
    object falls back to ``str(obj)`` so provenance never makes the report fail.
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "to_dict"):
        try:
            return to_jsonable(obj.to_dict())
        except Exception:  # noqa: BLE001 - provenance must never break the report
            pass
    if hasattr(obj, "tolist"):  # torch tensors, numpy-likes
        try:
            return to_jsonable(obj.tolist())
        except Exception:  # noqa: BLE001
            pass
    return str(obj)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, fsync: bool | None = True,
                      sort_keys: bool = False) -> Path:
    """Write ``obj`` as strict JSON (NaN/inf → null) atomically."""
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, sort_keys=sort_keys)
    return atomic_write_text(path, text + "\n", fsync=fsync)
