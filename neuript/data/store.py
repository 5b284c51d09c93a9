"""The on-disk window store: its format and the random-access reader :class:`WindowStore`.

The parallel, resumable writer and the ``info`` summary are in :mod:`neuript.data.prepare`.

Layout of a store directory (format ``neuript-window-store`` version 1)::

    STORE/
      manifest.json          recipe, options, preprocessing config, dtype, sfreq, n_times, label names, summary
      shards/<rec>.npy       windows of one recording, (n, C, T) float16/float32 µV, read with numpy memmap
      shards/<rec>.json      that recording's window table, channels, positions, montage key, rejections
      failed.json            recordings that could not be prepared and why (retried on the next run)
      windows.csv            the concatenated window table (written when preparation completes)

A recording is *done* when its ``.json`` exists: the worker writes ``.npy`` then ``.json`` to temporary names
and renames them (atomic on POSIX), so a killed run leaves no half-written shard and a rerun skips exactly the
finished recordings. Why numpy memmap shards rather than HDF5: see docs/data.md (measured there).

Integrity: each shard's ``.json`` records the ``.npy``'s size and SHA-256 (``npy_bytes``, ``npy_sha256``).
:meth:`WindowStore.open` checks every shard's size and array header against its metadata, and the cached
``windows.csv`` against the metadata (rebuilt with a warning when they disagree); the checksum of a shard is
verified the first time a process reads it, and by ``prepare`` before it skips a finished recording. A damaged
part raises :class:`StoreError` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from neuript._atomic import atomic_path
from neuript.data.preprocess import REJECT_REASONS

__all__ = ["WindowStore", "StoreError", "montage_key", "file_sha256", "check_shard", "FORMAT", "VERSION",
           "TABLE_COLUMNS"]

FORMAT = "neuript-window-store"
VERSION = 1
TABLE_COLUMNS = ["dataset", "subject", "session", "recording", "start", "label", "split", "montage"]


def montage_key(ch_names: Sequence[str], positions: np.ndarray) -> str:
    """Stable key of a montage: ``tcp20`` for the TCP double banana, else ``<C>ch-<hash of names+positions>``."""
    from neuript.electrodes import TCP_BIPOLAR

    if tuple(ch_names) == TCP_BIPOLAR:
        return "tcp20"
    h = hashlib.sha1(json.dumps([list(ch_names), np.round(np.asarray(positions, float), 5).tolist()]).encode())
    return f"{len(ch_names)}ch-{h.hexdigest()[:10]}"


class StoreError(ValueError):
    """A part of a window store is missing, truncated or edited. The message names the file and the fix."""


def file_sha256(path: Path, *, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _rebuild_hint(store: Path) -> str:
    return (f"rerun the `neuript prepare` command that built {store} (same arguments): it rebuilds the damaged "
            "recording and keeps the others")


def check_shard(store: Path, meta: dict, *, checksum: bool = False) -> None:
    """Check one shard's ``.npy`` against its metadata: present, recorded size, array header (windows, channels,
    samples), and with ``checksum`` its SHA-256. Raises :class:`StoreError` naming the file and the fix."""
    npy = Path(store) / "shards" / f"{meta['recording']}.npy"
    fix = _rebuild_hint(Path(store))
    if not npy.exists():
        raise StoreError(f"{npy} is missing (its metadata lists {meta['n_windows']} windows); {fix}")
    size = npy.stat().st_size
    if "npy_bytes" in meta and size != meta["npy_bytes"]:
        raise StoreError(f"{npy} has {size} bytes but {meta['npy_bytes']} were written (truncated or replaced); {fix}")
    try:
        mm = np.load(npy, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise StoreError(f"{npy} is not a readable array ({err}); {fix}") from None
    want = (int(meta["n_windows"]), len(meta["ch_names"]), int(meta["n_times"]))
    if tuple(mm.shape) != want:
        raise StoreError(f"{npy} holds an array of shape {tuple(mm.shape)} but its metadata says {want} "
                         f"(windows, channels, samples); {fix}")
    del mm
    if checksum and meta.get("npy_sha256") and file_sha256(npy) != meta["npy_sha256"]:
        raise StoreError(f"{npy} does not match the checksum recorded when it was written (edited or corrupted); "
                         f"{fix}")


def read_shard_meta(path: Path) -> dict:
    """A shard's ``.json`` metadata; :class:`StoreError` naming the file when it is unreadable."""
    try:
        m = json.loads(Path(path).read_text())
        for key in ("recording", "n_windows", "ch_names", "n_times"):
            m[key]
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise StoreError(f"{path} is not valid shard metadata ({type(err).__name__}: {err}); "
                         f"{_rebuild_hint(Path(path).parent.parent)}") from None
    return m


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


class WindowStore:
    """Random-access reader of a window store (see module docstring for the layout).

    Use :meth:`open`. ``windows`` is the per-window table (``dataset, subject, session, recording, start,
    label, split, montage`` plus ``max_abs_uv``, ``shard``, ``row``); :meth:`read` returns float32 µV.
    """

    def __init__(self, path: Path, manifest: dict, windows: pd.DataFrame, recordings: dict[str, dict]):
        self.path = Path(path)
        self.manifest = manifest
        self.windows = windows
        self._recs = recordings
        self._shard_names = list(recordings)
        self._mmaps: dict[int, np.ndarray] = {}
        self._pid = os.getpid()
        self.verify_checksums = True  # each shard's SHA-256, once per process, on its first read

    # --- construction ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, _rebuild: bool = False) -> "WindowStore":
        """Open a store directory.

        Raises
        ------
        FileNotFoundError
            ``path`` is not a window store (no ``manifest.json``).
        """
        path = Path(path)
        mpath = path / "manifest.json"
        if not mpath.exists():
            raise FileNotFoundError(f"{path} is not a neuript window store (no manifest.json). Create one with "
                                    "`neuript prepare RECIPE --source DIR --out STORE`.")
        try:
            manifest = json.loads(mpath.read_text())
        except ValueError as err:
            raise StoreError(f"{mpath} is not valid JSON ({err}); {_rebuild_hint(path)}") from None
        if manifest.get("format") != FORMAT or manifest.get("version", 0) > VERSION:
            raise ValueError(f"{path}: unsupported store format {manifest.get('format')} v{manifest.get('version')} "
                             f"(this neuript reads {FORMAT} up to v{VERSION}): upgrade neuript if a newer one wrote "
                             "it, or rebuild the store with `neuript prepare ... --overwrite`")
        metas = {}
        for j in sorted((path / "shards").glob("*.json")):
            m = read_shard_meta(j)
            check_shard(path, m)
            metas[m["recording"]] = m
        summary = manifest.get("summary") or {}
        if manifest.get("complete") and summary.get("n_recordings") not in (None, len(metas)):
            raise StoreError(f"{path} lists {summary['n_recordings']} recordings in manifest.json but "
                             f"{len(metas)} shards are present in {path / 'shards'}; {_rebuild_hint(path)}")
        n_meta = sum(int(m["n_windows"]) for m in metas.values())
        if manifest.get("complete") and summary.get("n_windows") not in (None, n_meta):
            raise StoreError(f"{path}: manifest.json counts {summary['n_windows']} windows but the shard metadata "
                             f"{n_meta}; {_rebuild_hint(path)}")
        table_path = path / "windows.csv"
        if not _rebuild and table_path.exists() and manifest.get("complete"):
            windows = pd.read_csv(table_path, dtype={"subject": str, "session": str, "recording": str})
            counts = windows["recording"].value_counts().to_dict()
            if counts != {rid: m["n_windows"] for rid, m in metas.items() if m["n_windows"]}:
                warnings.warn(f"{table_path} disagrees with the shard metadata (edited?); rebuilt it from "
                              f"{path / 'shards'}", UserWarning, stacklevel=2)
                _rebuild = True
        else:
            _rebuild = True
        if _rebuild:
            frames = []
            for k, (rid, m) in enumerate(metas.items()):
                n = m["n_windows"]
                frames.append(pd.DataFrame({
                    "dataset": [m["dataset"]] * n, "subject": [m["subject"]] * n, "session": [m["session"]] * n,
                    "recording": [rid] * n, "start": np.asarray(m["start"], float),
                    "label": np.asarray(m["label"], np.int64), "split": [m["split"]] * n,
                    "montage": [m["montage"]] * n, "max_abs_uv": np.asarray(m["max_abs_uv"], float),
                    "shard": np.full(n, k, np.int64), "row": np.arange(n, dtype=np.int64)}))
            cols = TABLE_COLUMNS + ["max_abs_uv", "shard", "row"]
            windows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
            windows = windows[cols]
            try:  # cache the table; a read-only store is fine, it is rebuilt in memory each time
                with atomic_path(table_path) as tmp:
                    windows.to_csv(tmp, index=False)
            except OSError:
                pass
        windows["label"] = windows["label"].astype(np.int64)
        return cls(path, manifest, windows, metas)

    # --- contract ---------------------------------------------------------------------------------------
    @property
    def sfreq(self) -> float:
        return float(self.manifest["sfreq"])

    @property
    def n_times(self) -> int:
        return int(self.manifest["n_times"])

    @property
    def config(self) -> dict:
        """Recipe name, options and preprocessing config used to build the store."""
        return {"recipe": self.manifest["recipe"], "options": self.manifest["options"],
                "preprocess": self.manifest["config"], "dtype": self.manifest["dtype"]}

    @property
    def label_names(self) -> dict[int, str]:
        return {int(k): v for k, v in self.manifest.get("label_names", {}).items()}

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    @property
    def recordings(self) -> list[str]:
        return list(self._recs)

    def __len__(self) -> int:
        return len(self.windows)

    def __repr__(self) -> str:
        return (f"WindowStore({str(self.path)!r}, recipe={self.manifest['recipe']!r}, recordings={len(self._recs)}, "
                f"windows={len(self)}, sfreq={self.sfreq}, n_times={self.n_times})")

    def recording_channels(self, recording: str) -> tuple[list[str], np.ndarray]:
        """Channel names and (C, 3) positions (metres) of one recording."""
        if recording not in self._recs:
            raise KeyError(f"recording {recording!r} is not in {self.path}")
        m = self._recs[recording]
        return list(m["ch_names"]), np.asarray(m["positions"], dtype=np.float64)

    def montages(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """Montage key → (ch_names, positions) of the first recording with that montage."""
        out: dict[str, tuple[list[str], np.ndarray]] = {}
        for rid, m in self._recs.items():
            out.setdefault(m["montage"], self.recording_channels(rid))
        return out

    def recording_meta(self, recording: str) -> dict:
        return dict(self._recs[recording])

    def _mmap(self, shard: int) -> np.ndarray:
        if self._pid != os.getpid():  # forked into a DataLoader worker: reopen lazily
            self._mmaps = {}
            self._pid = os.getpid()
        mm = self._mmaps.get(shard)
        if mm is None:
            if self.verify_checksums:
                check_shard(self.path, self._recs[self._shard_names[shard]], checksum=True)
            mm = np.load(self.path / "shards" / f"{self._shard_names[shard]}.npy", mmap_mode="r")
            self._mmaps[shard] = mm
        return mm

    def read(self, indices: Sequence[int] | np.ndarray | int) -> np.ndarray:
        """Windows at positional ``indices`` of :attr:`windows`, as float32 µV of shape (n, C, T).

        All requested windows must share one channel count (one montage); mix montages through
        :class:`neuript.data.loader.WindowDataset`.
        """
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if idx.size == 0:
            return np.empty((0, 0, self.n_times), np.float32)
        if idx.min() < 0 or idx.max() >= len(self.windows):
            raise IndexError(f"window index out of range [0, {len(self.windows)})")
        shards = self.windows["shard"].to_numpy()[idx]
        rows = self.windows["row"].to_numpy()[idx]
        out = None
        for s in np.unique(shards):
            sel = np.flatnonzero(shards == s)
            mm = self._mmap(int(s))
            r = rows[sel]
            order = np.argsort(r, kind="stable")
            block = mm[r[order]]
            if out is None:
                out = np.empty((len(idx),) + mm.shape[1:], dtype=np.float32)
            elif out.shape[1:] != mm.shape[1:]:
                raise ValueError(f"{self.path}: indices span montages with different shapes {out.shape[1:]} vs "
                                 f"{mm.shape[1:]}; read one montage at a time")
            out[sel[order]] = block
        return out

    def rejected_counts(self) -> dict[str, int]:
        """Rejected windows per reason over the whole store."""
        return {r: int(sum(m["rejected"].get(r, 0) for m in self._recs.values())) for r in REJECT_REASONS}

    def failed(self) -> dict[str, str]:
        p = self.path / "failed.json"
        return json.loads(p.read_text()) if p.exists() else {}
