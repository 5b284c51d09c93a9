"""Tools of the hostile-input suite: run the ``neuript`` command in-process exactly as a user runs it
(``neuript.cli.main``: argument parsing, the one-line error policy, exit codes), byte-level snapshots of
folders, and generators of bad inputs made from the real recordings of ``../shared/data``."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest


# ---------------------------------------------------------------------------------------------- the command
@dataclass
class CliResult:
    code: int
    out: str
    err: str
    warnings: list[str] = field(default_factory=list)
    exception: BaseException | None = None

    @property
    def text(self) -> str:
        """Everything the user sees: stdout, stderr and the warnings Python would print."""
        return "\n".join([self.out, self.err, *(f"warning: {w}" for w in self.warnings)])


def run_cli(*argv) -> CliResult:
    """``neuript ARGV`` in this process, through :func:`neuript.cli.main` (what the console script calls).

    A user error ends in ``SystemExit`` with the one-line message on stderr; a bug re-raises after printing
    "internal error": it is caught here and its traceback appended to ``err`` (as a user would see it)."""
    from neuript import cli

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_cols = sys.argv, os.environ.get("COLUMNS")
    sys.argv = ["neuript", *map(str, argv)]
    os.environ["COLUMNS"] = "400"  # rich panels (typer's usage errors) must not wrap the words checked
    code, exc = 0, None
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            try:
                cli.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception as e:  # noqa: BLE001 - an internal error: main printed "internal error" and re-raised
                exc, code = e, 1
                err.write("Traceback (most recent call last):\n" + "".join(traceback.format_exception(e)))
    finally:
        sys.argv = old_argv
        if old_cols is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_cols
    msgs = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    return CliResult(code=code, out=out.getvalue(), err=err.getvalue(), warnings=msgs, exception=exc)


# ---------------------------------------------------------------------------------------------- snapshots
def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file (hidden ones included) under ``roots`` → its SHA-256; a missing root is empty."""
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            out[str(root)] = sha256(root)
            continue
        if not root.exists():
            continue
        for f in sorted(root.rglob("*")):
            if f.is_file() and not f.is_symlink():
                out[str(f)] = sha256(f)
            elif f.is_symlink():
                out[str(f)] = "link:" + os.readlink(f)
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    return {"modified": sorted(k for k in before if k in after and before[k] != after[k]),
            "removed": sorted(k for k in before if k not in after),
            "added": sorted(k for k in after if k not in before)}


# ---------------------------------------------------------------------------------------------- EDF byte edits
def _ns(b: bytes) -> int:
    return int(b[252:256])


def edf_set_units(path: Path, unit: str, only: int | None = None) -> Path:
    """Write ``unit`` into the physical-dimension field of every (or one) signal."""
    b = bytearray(path.read_bytes())
    ns = _ns(b)
    off = 256 + ns * 96
    for i in range(ns) if only is None else [only]:
        b[off + 8 * i: off + 8 * (i + 1)] = unit.ljust(8).encode("latin-1")
    path.write_bytes(bytes(b))
    return path


def edf_labels(path: Path) -> list[str]:
    b = path.read_bytes()
    return [b[256 + 16 * i: 256 + 16 * (i + 1)].decode("latin-1").strip() for i in range(_ns(b))]


def edf_set_labels(path: Path, mapping: dict[str, str]) -> Path:
    """Rename signals in the header (``mapping``: old label → new label, latin-1, at most 16 bytes)."""
    b = bytearray(path.read_bytes())
    for i, lab in enumerate(edf_labels(path)):
        if lab in mapping:
            b[256 + 16 * i: 256 + 16 * (i + 1)] = mapping[lab].encode("latin-1").ljust(16)[:16]
    path.write_bytes(bytes(b))
    return path


def edf_set_field(path: Path, offset: int, width: int, value: str) -> Path:
    b = bytearray(path.read_bytes())
    b[offset: offset + width] = value.encode("ascii").ljust(width)[:width]
    path.write_bytes(bytes(b))
    return path


def truncate(path: Path, keep: float | int) -> Path:
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else int(keep)
    path.write_bytes(data[:n])
    return path



def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=False)
    return dst


def save_fif(raw, path: Path) -> Path:
    raw.save(path, overwrite=True, verbose="error")
    return path


def scaled(raw, names, factor):
    r = raw.copy()
    for n in names:
        r._data[r.ch_names.index(n)] *= factor
    return r


__all__ = ["CliResult", "run_cli", "snapshot", "changed", "sha256", "edf_set_units", "edf_labels",
           "edf_set_labels", "edf_set_field", "truncate", "copy_tree", "save_fif", "scaled", "np"]
