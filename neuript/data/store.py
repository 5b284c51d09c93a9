"""The on-disk window store: written in parallel, atomically and resumably; read with random access.

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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from neuript._atomic import atomic_write, atomic_write_text
from neuript.data.preprocess import PreprocessConfig, REJECT_REASONS, event_windows, preprocess_raw, \
    reject_windows, sliding_windows

__all__ = ["WindowStore", "prepare_store", "PrepareReport", "PrepareError", "store_info", "format_info",
           "montage_key", "FORMAT", "VERSION"]

FORMAT = "neuript-window-store"
VERSION = 1
TABLE_COLUMNS = ["dataset", "subject", "session", "recording", "start", "label", "split", "montage"]


class PrepareError(RuntimeError):
    """Some recordings could not be prepared. The others were written; a rerun retries only the failed ones."""

    def __init__(self, failed: dict[str, str], store: Path):
        self.failed = dict(failed)
        lines = "\n".join(f"  - {k}: {v}" for k, v in list(failed.items())[:20])
        more = f"\n  ... and {len(failed) - 20} more (see {store}/failed.json)" if len(failed) > 20 else ""
        super().__init__(f"{len(failed)} recording(s) failed; the others are in {store}. Fix or remove the files "
                         f"and rerun the same command to resume:\n{lines}{more}")


def montage_key(ch_names: Sequence[str], positions: np.ndarray) -> str:
    """Stable key of a montage: ``tcp20`` for the TCP double banana, else ``<C>ch-<hash of names+positions>``."""
    from neuript.electrodes import TCP_BIPOLAR

    if tuple(ch_names) == TCP_BIPOLAR:
        return "tcp20"
    h = hashlib.sha1(json.dumps([list(ch_names), np.round(np.asarray(positions, float), 5).tolist()]).encode())
    return f"{len(ch_names)}ch-{h.hexdigest()[:10]}"


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
# Worker: one recording → one shard
# ----------------------------------------------------------------------------------------------------------


def _interval_labels(starts_s: np.ndarray, onsets: np.ndarray, durations: np.ndarray, labels: np.ndarray):
    out = np.full(len(starts_s), -1, dtype=np.int64)
    for on, du, lab in zip(onsets, durations, labels):
        inside = (starts_s >= on - 1e-9) & (starts_s < on + max(du, 0.0) - 1e-9)
        out[inside & (out == -1)] = lab
    return out


def process_recording(rec, recipe, cfg: PreprocessConfig, shard_dir: Path, dtype: str) -> dict[str, Any]:
    """Read, preprocess, window, reject and write one recording's shard. Returns its metadata."""
    from neuript.data.io import read_raw

    raw = read_raw(rec.path)
    events = recipe.events(raw, rec)
    data, ch_names, positions, sfreq = preprocess_raw(raw, cfg)
    T, stride = cfg.n_times, cfg.stride
    offset = float(getattr(raw, "first_time", 0.0) or 0.0) + cfg.crop_start_s
    if events is None:
        wins, starts = sliding_windows(data, T, stride)
        labels = np.full(len(starts), int(rec.label), dtype=np.int64)
    elif events.mode == "interval":
        wins, starts = sliding_windows(data, T, stride)
        labels = _interval_labels(starts / sfreq, np.asarray(events.onsets) - offset, np.asarray(events.durations),
                                  np.asarray(events.labels))
    elif events.mode == "locked":
        keep_ev = np.asarray(events.labels) >= 0
        wins, starts, labels = event_windows(
            data, sfreq=sfreq, onsets_s=np.asarray(events.onsets)[keep_ev] - offset,
            durations_s=np.asarray(events.durations)[keep_ev], labels=np.asarray(events.labels)[keep_ev],
            n_times=T, stride=stride)
    else:
        raise ValueError(f"unknown Events.mode {events.mode!r}")
    n_total = len(starts)
    keep, reason, counts = reject_windows(wins, reject_uv=cfg.reject_uv, flat_uv=cfg.flat_uv)
    peak = np.abs(np.where(np.isfinite(wins), wins, 0)).max(axis=(1, 2)) if n_total else np.zeros(0)
    wins = wins[keep].astype(dtype)
    if dtype == "float16" and wins.size and np.abs(wins).max() > 65000:
        raise ValueError(f"{rec.path}: amplitudes exceed the float16 range; use --dtype float32")
    mkey = montage_key(ch_names, positions)
    meta = {
        "recording": rec.recording, "path": str(rec.path), "dataset": rec.dataset, "subject": rec.subject,
        "session": rec.session, "split": rec.split, "ch_names": list(ch_names),
        "positions": np.asarray(positions, float).tolist(), "montage": mkey, "sfreq": sfreq,
        "n_times": T, "duration_s": data.shape[1] / sfreq, "n_windows_total": int(n_total),
        "n_windows": int(keep.sum()), "rejected": counts,
        "rejected_by_label": {str(int(lab)): {r: int(((reason == r) & (labels == lab)).sum()) for r in REJECT_REASONS}
                              for lab in np.unique(labels)},
        # window starts in seconds from the start of the recording (crop_start_s added back)
        "start": (starts[keep] / sfreq + cfg.crop_start_s).tolist(), "label": labels[keep].astype(int).tolist(),
        "max_abs_uv": np.round(peak[keep], 3).tolist(),
    }
    shard_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(shard_dir / f"{rec.recording}.npy", lambda fh: np.save(fh, np.ascontiguousarray(wins)))
    atomic_write_text(shard_dir / f"{rec.recording}.json", json.dumps(meta, default=_json_default))
    return meta


def _init_worker() -> None:
    """Pool initializer: on Linux, die with the parent (a killed ``prepare`` leaves no orphan workers)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not available off Linux
        pass


def _worker(rec, recipe_name, recipe_opts, cfg_dict, shard_dir, dtype):
    import warnings as _w

    from neuript.data.recipes import get_recipe

    try:
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            recipe = get_recipe(recipe_name, **recipe_opts)
            meta = process_recording(rec, recipe, PreprocessConfig.from_dict(cfg_dict), Path(shard_dir), dtype)
        return rec.recording, {k: meta[k] for k in ("n_windows", "n_windows_total", "rejected")}, None
    except Exception as err:  # noqa: BLE001 - reported per recording, never swallowed
        msg = f"{type(err).__name__}: {err}"
        if not str(rec.path) in msg:
            msg = f"{rec.path}: {msg}"
        if not isinstance(err, (ValueError, OSError, RuntimeError)):
            msg += "\n" + traceback.format_exc(limit=3)
        return rec.recording, None, msg


# ----------------------------------------------------------------------------------------------------------
# Preparation driver
# ----------------------------------------------------------------------------------------------------------


class PrepareReport(dict):
    """Result of :func:`prepare_store`: ``done``, ``skipped``, ``failed`` (rec → message), ``n_windows``,
    ``rejected`` (reason → count), ``seconds``."""


def _config_fingerprint(manifest: dict) -> str:
    core = {k: manifest[k] for k in ("recipe", "options", "config", "dtype")}
    return hashlib.sha1(json.dumps(core, sort_keys=True, default=_json_default).encode()).hexdigest()


def prepare_store(
    recipe,
    *,
    source: str | os.PathLike,
    out: str | os.PathLike,
    config: PreprocessConfig | None = None,
    n_jobs: int = 1,
    dtype: str = "float16",
    progress: bool = True,
    overwrite: bool = False,
    raise_on_error: bool = True,
) -> PrepareReport:
    """Prepare a window store from a recipe (parallel, resumable, atomic).

    Parameters
    ----------
    recipe : Recipe
        An instance from :func:`neuript.data.recipes.get_recipe`.
    source : path
        Folder holding the dataset's files.
    out : path
        Store directory (created). If it exists with the same recipe/options/config/dtype, finished
        recordings are skipped (resume); with different settings it is an error unless ``overwrite``.
    config : PreprocessConfig, optional
        Defaults to ``recipe.config()``.
    n_jobs : int
        Worker processes (1 = in this process).
    dtype : {"float16", "float32"}
        On-disk sample type. float16 halves disk and I/O; its ~3 significant digits are far finer than EEG
        noise (relative error < 5e-4 at the ±100 µV scale).
    progress : bool
        Show a progress bar (tqdm, on stderr).
    raise_on_error : bool
        Raise :class:`PrepareError` after all other recordings are done if any failed.

    Returns
    -------
    PrepareReport
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    t0 = time.perf_counter()
    out = Path(out)
    cfg = config or recipe.config()
    recs = recipe.recordings(Path(source))
    ids = [r.recording for r in recs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"recipe {recipe.name!r} produced duplicate recording ids {sorted(dup)[:5]}")
    desc = recipe.describe()
    manifest = {
        "format": FORMAT, "version": VERSION, "recipe": desc["recipe"], "options": desc["options"],
        "label_names": desc["label_names"], "config": cfg.to_dict(), "dtype": dtype, "sfreq": cfg.sfreq,
        "n_times": cfg.n_times, "source": str(Path(source).resolve()), "complete": False,
    }
    mpath = out / "manifest.json"
    if mpath.exists():
        old = json.loads(mpath.read_text())
        if _config_fingerprint(old) != _config_fingerprint(manifest):
            if not overwrite:
                raise FileExistsError(
                    f"{out} holds a store built with other settings (recipe {old.get('recipe')}, options "
                    f"{old.get('options')}, dtype {old.get('dtype')}). Use another --out, or --overwrite to rebuild.")
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists, is not empty and is not a window store; choose another --out")
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(mpath, json.dumps(manifest, indent=1, default=_json_default))

    stale = sorted({j.stem for j in shard_dir.glob("*.json")} - set(ids))
    if stale:
        warnings.warn(f"{out} holds {len(stale)} recording(s) that the recipe no longer lists under {source} "
                      f"(e.g. {stale[:3]}); they stay in the store. Delete shards/<name>.npy/.json or use "
                      "--overwrite to drop them.", UserWarning, stacklevel=2)
    todo = [r for r in recs if not (shard_dir / f"{r.recording}.json").exists()]
    skipped = len(recs) - len(todo)
    failed: dict[str, str] = {}
    done: dict[str, dict] = {}
    args = (recipe.name, dict(recipe.opts), cfg.to_dict(), str(shard_dir), dtype)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(recs), initial=skipped, desc=f"prepare {recipe.name}", unit="rec", dynamic_ncols=True)

    def _record(rid, meta, err):
        if err is None:
            done[rid] = meta
        else:
            failed[rid] = err
            atomic_write_text(out / "failed.json", json.dumps(failed, indent=1))
        if bar is not None:
            bar.update(1)
            if err:
                bar.write(f"FAILED {err.splitlines()[0]}")

    if n_jobs <= 1 or len(todo) <= 1:
        for r in todo:
            _record(*_worker(r, *args))
    else:
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo)), initializer=_init_worker) as ex:
            futs = [ex.submit(_worker, r, *args) for r in todo]
            for f in as_completed(futs):
                _record(*f.result())
    if bar is not None:
        bar.close()
    failed_path = out / "failed.json"
    if failed:
        atomic_write_text(failed_path, json.dumps(failed, indent=1))
    elif failed_path.exists():
        failed_path.unlink()
    # consolidate the window table and summary
    store = WindowStore.open(out, _rebuild=True)
    manifest["complete"] = not failed
    manifest["summary"] = {"n_recordings": len(store.recordings), "n_windows": len(store),
                           "rejected": store.rejected_counts(), "failed": len(failed)}
    atomic_write_text(mpath, json.dumps(manifest, indent=1, default=_json_default))
    rej = {r: sum(m["rejected"][r] for m in done.values()) for r in REJECT_REASONS}
    report = PrepareReport(done=len(done), skipped=skipped, failed=failed, n_windows=len(store), rejected=rej,
                           seconds=time.perf_counter() - t0, store=str(out))
    if failed and raise_on_error:
        raise PrepareError(failed, out)
    return report


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
        manifest = json.loads(mpath.read_text())
        if manifest.get("format") != FORMAT or manifest.get("version", 0) > VERSION:
            raise ValueError(f"{path}: unsupported store format {manifest.get('format')} v{manifest.get('version')}")
        metas = {}
        for j in sorted((path / "shards").glob("*.json")):
            m = json.loads(j.read_text())
            metas[m["recording"]] = m
        table_path = path / "windows.csv"
        names = list(metas)
        if not _rebuild and table_path.exists() and manifest.get("complete"):
            windows = pd.read_csv(table_path, dtype={"subject": str, "session": str, "recording": str})
            if set(windows["recording"].unique()) - set(names):
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
                tmp = path / f".windows.csv.tmp{os.getpid()}"
                windows.to_csv(tmp, index=False)
                os.replace(tmp, table_path)
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


# ----------------------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------------------


def store_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a store: recordings, windows per split and class, montages, rejections, failures."""
    st = WindowStore.open(path)
    w = st.windows
    names = {-1: "unlabelled", **st.label_names}
    per_split = {}
    for split, g in w.groupby("split", sort=True):
        per_split[split] = {"windows": int(len(g)), "recordings": int(g["recording"].nunique()),
                            "subjects": int(g["subject"].nunique()),
                            "classes": {names.get(int(k), str(k)): int(v) for k, v in
                                        g["label"].value_counts().sort_index().items()}}
    montages = {}
    for key, (chs, _) in st.montages().items():
        montages[key] = {"n_channels": len(chs), "channels": chs,
                         "windows": int((w["montage"] == key).sum())}
    rej_by_label: dict[str, dict[str, int]] = {}
    for m in st._recs.values():
        for lab, cnt in m.get("rejected_by_label", {}).items():
            d = rej_by_label.setdefault(names.get(int(lab), lab), {r: 0 for r in REJECT_REASONS})
            for r, c in cnt.items():
                d[r] += c
    return {
        "path": str(st.path), "recipe": st.manifest["recipe"], "options": st.manifest["options"],
        "complete": bool(st.manifest.get("complete")), "dtype": st.dtype, "sfreq": st.sfreq,
        "n_times": st.n_times, "window_s": st.n_times / st.sfreq, "recordings": len(st.recordings),
        "windows": len(st), "hours": len(st) * st.n_times / st.sfreq / 3600, "splits": per_split,
        "montages": montages, "rejected": st.rejected_counts(), "rejected_by_class": rej_by_label,
        "failed": st.failed(),
        "disk_mb": sum(f.stat().st_size for f in (st.path / "shards").glob("*.npy")) / 1e6,
    }


def format_info(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`store_info`."""
    lines = [f"store      {info['path']}",
             f"recipe     {info['recipe']}  options {info['options']}",
             f"status     {'complete' if info['complete'] else 'INCOMPLETE (rerun prepare to resume)'}",
             f"windows    {info['windows']} x {info['window_s']:g} s at {info['sfreq']:g} Hz ({info['n_times']} samples),"
             f" {info['hours']:.2f} h, {info['recordings']} recordings, {info['dtype']}, {info['disk_mb']:.1f} MB",
             "splits:"]
    for split, d in info["splits"].items():
        cls = ", ".join(f"{k}={v}" for k, v in d["classes"].items())
        lines.append(f"  {split:<9} {d['windows']:>7} windows  {d['recordings']:>5} recordings  "
                     f"{d['subjects']:>4} subjects  [{cls}]")
    lines.append("montages:")
    for key, d in info["montages"].items():
        chs = ", ".join(d["channels"][:8]) + (" ..." if d["n_channels"] > 8 else "")
        lines.append(f"  {key:<16} {d['n_channels']:>3} ch  {d['windows']:>7} windows  [{chs}]")
    rej = info["rejected"]
    lines.append("rejected:  " + ", ".join(f"{k}={v}" for k, v in rej.items()) + f"  (total {sum(rej.values())})")
    for lab, d in info["rejected_by_class"].items():
        if sum(d.values()):
            lines.append(f"  {lab:<10} " + ", ".join(f"{k}={v}" for k, v in d.items()))
    if info["failed"]:
        lines.append(f"FAILED recordings ({len(info['failed'])}):")
        for k, v in info["failed"].items():
            lines.append(f"  {k}: {v.splitlines()[0]}")
    return "\n".join(lines)


del asdict, Iterable
