"""Writing window stores: recordings → preprocessed, windowed shards, in parallel, atomically and resumably;
and the ``neuript info`` summary of a store.

The store's layout and its reader are in :mod:`neuript.data.store`. Every file is written to a temporary name and
renamed (:mod:`neuript._atomic`), so a killed run leaves no half-written shard and a rerun skips exactly the
finished recordings.
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
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from neuript._atomic import atomic_write, atomic_write_text
from neuript.data.preprocess import PreprocessConfig, REJECT_REASONS, event_windows, flat_window_electrodes, \
    preprocess_raw, reject_windows, sliding_windows
from neuript.data.store import FORMAT, VERSION, StoreError, WindowStore, _json_default, check_shard, file_sha256, \
    montage_key, read_shard_meta

__all__ = ["prepare_store", "PrepareReport", "PrepareError", "process_recording", "store_info", "format_info"]


#: Largest finite float16 (65504), less a margin for rounding.
F16_MAX = 65000.0


class PrepareError(RuntimeError):
    """Some recordings could not be prepared. The others were written; a rerun retries only the failed ones."""

    def __init__(self, failed: dict[str, str], store: Path):
        self.failed = dict(failed)
        lines = "\n".join(f"  - {k}: {v}" for k, v in list(failed.items())[:20])
        more = f"\n  ... and {len(failed) - 20} more (see {store}/failed.json)" if len(failed) > 20 else ""
        super().__init__(f"{len(failed)} recording(s) failed; the others are in {store}. Fix or remove the files "
                         f"and rerun the same command to resume:\n{lines}{more}")


# ----------------------------------------------------------------------------------------------------------
# Worker: one recording → one shard
# ----------------------------------------------------------------------------------------------------------


def _interval_labels(starts_s: np.ndarray, onsets: np.ndarray, durations: np.ndarray, labels: np.ndarray):
    out = np.full(len(starts_s), -1, dtype=np.int64)
    for on, du, lab in zip(onsets, durations, labels):
        inside = (starts_s >= on - 1e-9) & (starts_s < on + max(du, 0.0) - 1e-9)
        out[inside & (out == -1)] = lab
    return out


#: At most this many distinct warnings are kept per recording in its shard metadata.
MAX_WARNINGS = 20


def _kept_warnings(caught) -> list[str]:
    """The distinct data warnings (``UserWarning`` / ``RuntimeWarning``: dropped or interpolated channels, NaN
    samples, odd units or sampling rates, reader notes) of one recording, in order, with repeats counted.
    Library deprecation notes are not about the data and are left out."""
    counts: dict[str, int] = {}
    for w in caught:
        if issubclass(w.category, (UserWarning, RuntimeWarning)):
            msg = str(w.message).strip()
            counts[msg] = counts.get(msg, 0) + 1
    out = [m if n == 1 else f"{m} (x{n})" for m, n in counts.items()]
    if len(out) > MAX_WARNINGS:
        out = out[:MAX_WARNINGS] + [f"... and {len(out) - MAX_WARNINGS} more warning(s)"]
    return out


def process_recording(rec, recipe, cfg: PreprocessConfig, shard_dir: Path, dtype: str, *,
                      rename: dict[str, str] | None = None) -> dict[str, Any]:
    """Read, preprocess, window, reject and write one recording's shard (``rename``: channel renames applied
    right after reading). Returns its metadata.

    The warnings raised on the way (channels dropped or interpolated, NaN samples, ...) are kept in the
    metadata under ``"warnings"`` (so ``neuript info`` can show them after a parallel run whose workers' output
    is not seen) and re-issued here, once each, as ``UserWarning``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wins, meta = _window_recording(rec, recipe, cfg, dtype, rename=rename)
    meta["warnings"] = _kept_warnings(caught)
    shard_dir.mkdir(parents=True, exist_ok=True)
    npy = shard_dir / f"{rec.recording}.npy"
    atomic_write(npy, lambda fh: np.save(fh, np.ascontiguousarray(wins)))
    # size and checksum of what was written, so a later truncation or edit is caught (store.check_shard)
    meta["npy_bytes"], meta["npy_sha256"] = npy.stat().st_size, file_sha256(npy)
    atomic_write_text(shard_dir / f"{rec.recording}.json", json.dumps(meta, default=_json_default))
    for msg in meta["warnings"]:
        warnings.warn(msg, UserWarning, stacklevel=2)
    return meta


def _window_recording(rec, recipe, cfg: PreprocessConfig, dtype: str, *, rename: dict[str, str] | None):
    """One recording's kept windows (in ``dtype``) and its shard metadata (without the file fields)."""
    import mne

    from neuript.data.recording import check_amplitude

    raw = recipe.read(rec)
    if not isinstance(raw, mne.io.BaseRaw):
        raise TypeError(f"{rec.path}: recipe {recipe.name!r}'s read() returned {type(raw).__name__}, not an "
                        "mne.io.BaseRaw; return e.g. mne.io.RawArray(data_in_volts, mne.create_info(ch_names, sfreq, "
                        "'eeg'))")
    if rename:
        present = {k: v for k, v in rename.items() if k in raw.ch_names}
        if present:
            raw.rename_channels(present, verbose="error")
    events = recipe.events(raw, rec)
    flat: dict[str, np.ndarray] = {}
    data, ch_names, positions, sfreq = preprocess_raw(raw, cfg, flat_out=flat)
    check_amplitude(data, str(rec.path), ch_names=ch_names)
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
    if flat and n_total:  # dead recorded electrodes that the montage hides: rejected as "flat" too
        dead = np.array([bool(e) for e in flat_window_electrodes(flat, starts, T)])
        newly = dead & ((reason == "") | (reason == "amplitude"))  # "flat" ranks before "amplitude"
        keep, reason = keep & ~dead, reason.copy()
        reason[newly] = "flat"
        counts = {r: int((reason == r).sum()) for r in REJECT_REASONS}
    peak = np.abs(np.where(np.isfinite(wins), wins, 0)).max(axis=(1, 2)) if n_total else np.zeros(0)
    if dtype == "float16" and keep.any() and np.abs(wins[keep]).max() > F16_MAX:
        ch_peak = np.abs(wins[keep]).max(axis=(0, 2))
        worst = int(np.argmax(ch_peak))
        raise ValueError(
            f"{rec.path}: channel {ch_names[worst]} reaches {ch_peak[worst]:.3g} µV, beyond the range of a float16 "
            f"store (±{F16_MAX:g}) and of scalp EEG. Check that channel's unit or gain in the file header, or "
            "reject such windows with --set reject_uv=1000 (a kept window must stay below it); --dtype float32 "
            "stores the values as they are.")
    wins = wins[keep].astype(dtype)
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
    return wins, meta


def _init_worker() -> None:
    """Pool initializer: on Linux, die with the parent (a killed ``prepare`` leaves no orphan workers)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not available off Linux
        pass


def _worker(rec, recipe_name, recipe_opts, cfg_dict, shard_dir, dtype, rename=None):
    import warnings as _w

    from neuript.data.recipes import get_recipe

    try:
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            recipe = get_recipe(recipe_name, **recipe_opts)
            meta = process_recording(rec, recipe, PreprocessConfig.from_dict(cfg_dict), Path(shard_dir), dtype,
                                     rename=rename)
        return rec.recording, {k: meta[k] for k in ("n_windows", "n_windows_total", "rejected", "warnings")}, None
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


def _shard_done(out: Path, recording: str) -> bool:
    """Whether a recording's shard is finished and intact; a damaged one is removed (with a warning) so that
    it is rebuilt."""
    meta_path = out / "shards" / f"{recording}.json"
    if not meta_path.exists():
        return False
    try:
        check_shard(out, read_shard_meta(meta_path), checksum=True)
        return True
    except StoreError as err:
        warnings.warn(f"rebuilding {recording}: {str(err).split('; rerun')[0]}", UserWarning, stacklevel=3)
        meta_path.unlink()
        return False


def _empty_recordings(store: WindowStore, cfg: PreprocessConfig) -> dict[str, str]:
    """Recordings that gave no window at all, with why (shorter than a window, or no labelled events)."""
    window_s = cfg.n_times / cfg.sfreq
    out = {}
    for rid, m in store._recs.items():
        if m.get("n_windows_total", m["n_windows"]) == 0:
            dur = float(m.get("duration_s", 0.0))
            why = (f"{dur:.1f} s after cropping, shorter than one {window_s:g} s window" if dur < window_s
                   else f"{dur:.1f} s but no window in a labelled event")
            out[f"{rid} [{m.get('path', rid)}]"] = why
    return out


#: Companion files of a recording (read with it, never a recording of their own).
_COMPANIONS = (".fdt", ".eeg", ".vmrk", ".dat")


def _unused_files(source: Path, recs, out: Path) -> dict[str, Any]:
    """Files under ``source`` that the recipe did not use: recordings by name (a misnamed file, another
    extension), everything else counted (the store ``out`` itself excluded, if it lies inside)."""
    from neuript.data.io import SUPPORTED_SUFFIXES, _suffix

    used = {Path(r.path).resolve() for r in recs}
    store = Path(out).resolve()
    recordings, other = [], 0
    if not source.is_dir():
        return {"recordings": [], "n_recordings": 0, "n_other": 0}
    for f in sorted(source.rglob("*")):
        if not f.is_file() or f.resolve() in used or f.name.startswith(".") or store in f.resolve().parents:
            continue
        suffix = _suffix(f)
        if suffix in SUPPORTED_SUFFIXES:
            recordings.append(str(f.relative_to(source)))
        elif suffix not in _COMPANIONS:
            other += 1
    return {"recordings": recordings[:50], "n_recordings": len(recordings), "n_other": other}


class PrepareReport(dict):
    """Result of :func:`prepare_store`: ``done``, ``skipped``, ``failed`` (rec → message), ``n_windows``,
    ``rejected`` (reason → count), ``seconds``, ``warnings`` (rec → its warnings, for the recordings prepared
    in this call)."""


def _config_fingerprint(manifest: dict) -> str:
    core = {k: manifest[k] for k in ("recipe", "options", "config", "dtype")}
    # data-dependent label codes (generic recipes) and seeded subject splits must match too, else the shards
    # already written would carry other labels / splits than the new ones (a split read from a recording's own
    # manifest row cannot change, so adding rows to a table still resumes)
    core["label_names"] = {str(k): v for k, v in (manifest.get("label_names") or {}).items()}
    splits = manifest.get("splits") or {}
    core["splits"] = splits if splits.get("by") == "subject" else None
    if manifest.get("rename"):  # older stores have no key: same fingerprint as before
        core["rename"] = manifest["rename"]
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
    rename: dict[str, str] | None = None,
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
    rename : dict, optional
        Channel renames (old → new name) applied to every recording right after reading, for labels the
        recipe does not recognise; recorded in the manifest (a store built with other renames is not resumed).

    Returns
    -------
    PrepareReport
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"--n-jobs must be a positive integer (worker processes); got {n_jobs!r}")
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
    if rename:
        manifest["rename"] = dict(rename)
    if desc.get("splits") is not None:  # how the splits were made and which subjects are in each (data/splits.py)
        manifest["splits"] = desc["splits"]
    mpath = out / "manifest.json"
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as err:
            raise StoreError(f"{mpath} is not valid JSON ({err}): the store in {out} is damaged. Rebuild it with "
                             "--overwrite, or choose another --out") from None
        if _config_fingerprint(old) != _config_fingerprint(manifest):
            if not overwrite:
                raise FileExistsError(
                    f"{out} holds a store built with other settings (recipe {old.get('recipe')}, options "
                    f"{old.get('options')}, dtype {old.get('dtype')}; or other label names or subject splits, "
                    "e.g. after recordings were added). Use another --out, or --overwrite to rebuild.")
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
    todo = [r for r in recs if not _shard_done(out, r.recording)]
    skipped = len(recs) - len(todo)
    failed: dict[str, str] = {}
    done: dict[str, dict] = {}
    args = (recipe.name, dict(recipe.opts), cfg.to_dict(), str(shard_dir), dtype, dict(rename or {}) or None)
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
    manifest["empty_recordings"] = _empty_recordings(store, cfg)
    manifest["unused_files"] = _unused_files(Path(source), recs, out)
    atomic_write_text(mpath, json.dumps(manifest, indent=1, default=_json_default))
    if manifest["empty_recordings"]:
        shown = "; ".join(f"{k} ({v})" for k, v in list(manifest["empty_recordings"].items())[:5])
        more = len(manifest["empty_recordings"]) - 5
        warnings.warn(f"{len(manifest['empty_recordings'])} recording(s) gave no windows: {shown}"
                      f"{f' and {more} more (neuript info {out})' if more > 0 else ''}", UserWarning, stacklevel=2)
    warned = {rid: m["warnings"] for rid, m in done.items() if m.get("warnings")}
    if warned:
        first_rid, first = next(iter(warned.items()))
        others = f" ({', '.join(list(warned)[1:4])}{' ...' if len(warned) > 4 else ''} too)" if len(warned) > 1 else ""
        warnings.warn(f"{len(warned)} of the {len(done)} recording(s) prepared now came with warnings, e.g. "
                      f"{first_rid}: {first[0]}{others}. They are kept with each recording; `neuript info {out}` "
                      "lists them. Check that the dropped or interpolated channels and NaN samples are expected.",
                      UserWarning, stacklevel=2)
    rej = {r: sum(m["rejected"][r] for m in done.values()) for r in REJECT_REASONS}
    report = PrepareReport(done=len(done), skipped=skipped, failed=failed, n_windows=len(store), rejected=rej,
                           seconds=time.perf_counter() - t0, store=str(out), warnings=warned)
    if failed and raise_on_error:
        raise PrepareError(failed, out)
    return report


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
        "failed": st.failed(), "split_rule": st.manifest.get("splits"),
        "empty_recordings": st.manifest.get("empty_recordings") or {},
        "warnings": {rid: m["warnings"] for rid, m in st._recs.items() if m.get("warnings")},
        "unused_files": st.manifest.get("unused_files") or {},
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
    rule = info.get("split_rule")
    if rule:
        how = ", ".join(f"{k} {v}" for k, v in rule.items() if k not in ("by", "subjects"))
        lines.append(f"  split by {rule['by']}{f' ({how})' if how else ''}: " + "; ".join(
            f"{k} {', '.join(v[:6])}{' ...' if len(v) > 6 else ''}" for k, v in rule.get("subjects", {}).items()))
    lines.append("montages:")
    for key, d in info["montages"].items():
        chs = ", ".join(d["channels"][:8]) + (" ..." if d["n_channels"] > 8 else "")
        lines.append(f"  {key:<16} {d['n_channels']:>3} ch  {d['windows']:>7} windows  [{chs}]")
    rej = info["rejected"]
    lines.append("rejected:  " + ", ".join(f"{k}={v}" for k, v in rej.items()) + f"  (total {sum(rej.values())})")
    for lab, d in info["rejected_by_class"].items():
        if sum(d.values()):
            lines.append(f"  {lab:<10} " + ", ".join(f"{k}={v}" for k, v in d.items()))
    empty = info.get("empty_recordings") or {}
    if empty:
        lines.append(f"recordings without windows ({len(empty)}):")
        lines += [f"  {k}: {v}" for k, v in list(empty.items())[:10]]
        if len(empty) > 10:
            lines.append(f"  ... and {len(empty) - 10} more (neuript info --json)")
    warned = info.get("warnings") or {}
    if warned:
        lines.append(f"recordings with warnings ({len(warned)}):")
        for rid, msgs in list(warned.items())[:10]:
            lines.append(f"  {rid}: {msgs[0]}" + (f" (+{len(msgs) - 1} more)" if len(msgs) > 1 else ""))
        if len(warned) > 10:
            lines.append(f"  ... and {len(warned) - 10} more (neuript info --json)")
    unused = info.get("unused_files") or {}
    if unused.get("n_recordings") or unused.get("n_other"):
        recs = unused.get("recordings", [])
        lines.append(f"unused files in the source: {unused.get('n_recordings', 0)} recording(s) the recipe does not "
                     f"list{': ' + ', '.join(recs[:5]) if recs else ''}{' ...' if unused.get('n_recordings', 0) > 5 else ''}"
                     f"; {unused.get('n_other', 0)} other file(s)")
    if info["failed"]:
        lines.append(f"FAILED recordings ({len(info['failed'])}):")
        for k, v in info["failed"].items():
            lines.append(f"  {k}: {v.splitlines()[0]}")
    return "\n".join(lines)
