"""Atomic file writing shared by the report and plot writers.

Every output file is first written to a temporary file in the *same* directory and then moved over the
destination with :func:`os.replace`, which is atomic on POSIX and Windows. A reader therefore sees either
the old complete file or the new complete file, never a truncated one (e.g. after a crash or a kill).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_text"]


def atomic_write(
    path: str | os.PathLike,
    writer: Callable[[IO[bytes]], None],
    *,
    fsync: bool = True,
    mode: int = 0o644,
) -> Path:
    """Write a file atomically through a callback.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its parent directory is created if missing.
    writer : callable
        Called with a binary file object opened on the temporary file; it must write the whole content.
    fsync : bool, default True
        Flush the temporary file to disk before the rename, so the rename never exposes an empty file
        after a power loss.
    mode : int, default 0o644
        Permission bits of the new file (:func:`tempfile.mkstemp` would otherwise leave it at 0o600).

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    data = text.encode(encoding)
    return atomic_write(path, lambda fh: fh.write(data))
