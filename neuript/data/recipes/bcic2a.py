"""BCI Competition IV dataset 2a (Graz; Tangermann et al. 2012) — four-class motor imagery.

Two layouts are read:

* **GDF, as distributed by the competition** (``BCICIV_2a_gdf.zip``): ``A0sT.gdf`` (training session) and
  ``A0sE.gdf`` (evaluation session) for subjects s = 1-9, plus the true labels published after the competition,
  ``A0sT.mat`` / ``A0sE.mat`` (MATLAB, variable ``classlabel``, values 1-4; in the same folder or a ``true_labels``
  folder). GDF channels as MNE names them: ``EEG-Fz``, ``EEG-0`` ... ``EEG-16``, ``EEG-C3``, ``EEG-Cz``, ``EEG-C4``,
  ``EEG-Pz`` (22 EEG) and ``EOG-left``, ``EOG-central``, ``EOG-right``, 250 Hz. Events (GDF event table, MNE
  annotations): 768 trial start, 769 / 770 / 771 / 772 cue left hand / right hand / feet / tongue (training
  sessions), 783 cue unknown (evaluation sessions: its class is the next entry of the true-label file), 1023
  rejected trial, 1072 eye movements, 276 / 277 eyes open / closed, 32766 new run. A missing evaluation label file
  warns and that session is skipped (its cues have no class).
* **MOABB / BNCI Horizon** (``BNCI2014_001``; files ``A01T.mat`` / ``A01E.mat`` from
  ``bnci-horizon-2020.eu/database/data-sets/001-2014/``, which MOABB caches under
  ``MNE-bnci-data/database/data-sets/001-2014``): MATLAB struct ``data``, one cell per run with fields ``X``
  (samples x 25: 22 EEG + 3 EOG, µV), ``trial`` (1-based trial-start samples), ``y`` (classes 1-4), ``fs``,
  ``classes``, ``artifacts``, ``gender``, ``age``; the first runs hold the EOG calibration and no trials. The window
  store reads recordings through MNE, so each run with trials is written once as a FIF file (cue annotations
  769-772 at trial start + 2 s, the cue time of the paradigm) under ``cache_dir`` (default: a ``neuript_bcic2a``
  folder in the system temporary directory, one sub-folder per source) and re-used afterwards.

The 22 GDF channels are renamed, in file order, to the paradigm's electrodes (Fz, FC3, FC1, FCz, FC2, FC4, C5, C3,
C1, Cz, C2, C4, C6, CP3, CP1, CPz, CP2, CP4, P1, Pz, P2, POz) in :meth:`BCIC2a.events` — the per-recording hook
``prepare`` calls before preprocessing — since the GDF's numbered labels name no electrode.

Labels: left hand 0, right hand 1, feet 2, tongue 3. Windows: 4 s from the cue (t = 2-6 s of each trial, the
imagery period; CBraMod's convention, spec §6's 4 s). Rejected trials (1023) are kept, as in the literature.
Channels: the 16 bipolar pairs of spec §8 (``standard_1005``). Band-pass 0.1-30 Hz, notch 50 Hz (Graz).
Amplitude rejection is off. Split by subject (spec §6): 1-5 train, 6-7 val, 8-9 test; both sessions of a subject
go to its split.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Events, Recipe, Recording, find_files, parse_int_set, register_recipe


def _ints(value) -> set[int]:
    """``"1,2"`` / ``[1, 2]`` / ``"none"`` / ``""`` → a set of ints (empty for none)."""
    return set() if value is None or str(value).strip().lower() in ("", "none") else parse_int_set(value)


#: the 22 EEG electrodes in recording order (competition description, Fig. 3)
ELECTRODES = ["Fz", "FC3", "FC1", "FCz", "FC2", "FC4", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "CP3", "CP1",
              "CPz", "CP2", "CP4", "P1", "Pz", "P2", "POz"]
EOG = ["EOG-left", "EOG-central", "EOG-right"]
#: spec §8, BCIC-IV-2A 16 bipolar pairs, in order
PAIRS = ["C5-C1", "C3-Cz", "Cz-C4", "C2-C6", "Fz-C5", "C5-P1", "CP3-POz", "Fz-C1", "C1-Pz", "CP1-POz", "Fz-C2",
         "C2-Pz", "CP2-POz", "Fz-C6", "C6-P2", "CP4-POz"]
#: GDF cue event codes → label
CUES = {"769": 0, "770": 1, "771": 2, "772": 3}
UNKNOWN_CUE = "783"
#: seconds from trial start (fixation cross) to the cue in the paradigm
CUE_DELAY_S = 2.0


def gdf_channel_map(ch_names: list[str]) -> dict[str, str]:
    """Rename map from the GDF's EEG labels (``EEG-Fz``, ``EEG-0``, ...) to :data:`ELECTRODES`, in file order.

    Raises
    ------
    ValueError
        Not 22 EEG channels.
    """
    eeg = [n for n in ch_names if n.upper().startswith("EEG")]
    if len(eeg) != len(ELECTRODES):
        raise ValueError(f"expected the 22 EEG channels of BCIC-IV-2a (EEG-Fz, EEG-0, ...), found {len(eeg)}: {eeg}")
    return dict(zip(eeg, ELECTRODES))


def cue_events(descriptions, onsets, *, true_labels: np.ndarray | None = None,
               source: str = "<recording>") -> Events:
    """Cue events of a BCIC-IV-2a session as 4 s windows' onsets and labels.

    Parameters
    ----------
    descriptions, onsets : sequences
        Annotations (GDF event codes as strings, e.g. ``"769"``) and their onsets in seconds.
    true_labels : array, optional
        Classes 1-4 of the session's trials in order (the ``classlabel`` of ``A0sE.mat``); required when the
        session has unknown cues (783), and checked against known cues when given.
    source : str
        Name used in error messages.

    Returns
    -------
    Events
        ``mode="locked"``, one entry per cue.
    """
    desc = [str(d).strip() for d in descriptions]
    idx = [i for i, d in enumerate(desc) if d in CUES or d == UNKNOWN_CUE]
    if not idx:
        raise ValueError(f"{source}: no cue events (769-772 or 783): not a BCIC-IV-2a session, or its event table "
                         "was lost")
    n_unknown = sum(desc[i] == UNKNOWN_CUE for i in idx)
    if true_labels is not None:
        true = np.asarray(true_labels).astype(int).ravel()
        if len(true) != len(idx):
            raise ValueError(f"{source}: {len(idx)} cues but the true-label file has {len(true)} labels")
        if not np.isin(true, [1, 2, 3, 4]).all():
            raise ValueError(f"{source}: true labels must be classes 1-4, got {sorted(set(true.tolist()))}")
        labels = true - 1
        known = [(k, CUES[desc[i]]) for k, i in enumerate(idx) if desc[i] in CUES]
        bad = [k for k, lab in known if labels[k] != lab]
        if bad:
            raise ValueError(f"{source}: the true-label file disagrees with the cue events at trials {bad[:5]}; "
                             "wrong label file for this session?")
    elif n_unknown:
        raise ValueError(f"{source}: {n_unknown} cues of unknown class (783) and no true-label file")
    else:
        labels = np.asarray([CUES[desc[i]] for i in idx], np.int64)
    ons = np.asarray([float(onsets[i]) for i in idx])
    return Events(ons, np.zeros(len(ons)), np.asarray(labels, np.int64), mode="locked")


def _field(s, name):
    if isinstance(s, dict):
        return s[name]
    if hasattr(s, "_fieldnames"):
        return getattr(s, name)
    return s[name]  # numpy structured void


def read_bnci_runs(path: Path) -> list[dict]:
    """Runs of a BNCI 2014-001 (MOABB) ``A0s[TE].mat``: a list of dicts ``X`` (samples, 25) µV, ``trial`` (0-based
    trial-start samples), ``y`` (1-4), ``fs``; runs without trials are left out."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as err:  # noqa: BLE001 - one clear message naming the file
        raise ValueError(f"{path}: not a readable MATLAB file ({type(err).__name__}: {err})") from err
    if "data" not in mat:
        raise ValueError(f"{path}: no 'data' struct: not a BNCI 2014-001 (MOABB) file "
                         f"(variables: {sorted(k for k in mat if not k.startswith('__'))})")
    runs = np.atleast_1d(mat["data"])
    out = []
    for r in runs:
        trial = np.atleast_1d(np.asarray(_field(r, "trial"))).astype(int)
        if trial.size == 0:
            continue  # EOG calibration run
        X = np.asarray(_field(r, "X"), float)
        if X.ndim != 2 or X.shape[1] < len(ELECTRODES):
            raise ValueError(f"{path}: run X has shape {X.shape}, expected (samples, 25)")
        out.append({"X": X, "trial": trial - 1, "y": np.atleast_1d(np.asarray(_field(r, "y"))).astype(int),
                    "fs": float(np.asarray(_field(r, "fs")).ravel()[0])})
    return out


def bnci_run_to_raw(run: dict):
    """An ``mne.io.RawArray`` (22 EEG + 3 EOG, volts) with cue annotations ``769``-``772`` for one BNCI run."""
    import mne

    X = run["X"]
    n_eog = min(3, X.shape[1] - len(ELECTRODES))
    names = ELECTRODES + EOG[:n_eog]
    info = mne.create_info(names, run["fs"], ["eeg"] * len(ELECTRODES) + ["eog"] * n_eog)
    raw = mne.io.RawArray(X[:, :len(names)].T * 1e-6, info, verbose="error")
    codes = [str(769 + int(y) - 1) for y in run["y"]]
    raw.set_annotations(mne.Annotations(run["trial"] / run["fs"] + CUE_DELAY_S, 0.0, codes))
    return raw


def _label_file(gdf: Path) -> Path | None:
    for folder in (gdf.parent, gdf.parent / "true_labels", gdf.parent.parent / "true_labels"):
        for cand in folder.glob("*.mat") if folder.is_dir() else []:
            if cand.stem.lower() == gdf.stem.lower():
                return cand
    return None


def read_true_labels(path: Path) -> np.ndarray:
    """``classlabel`` (1-4) of a competition true-label file ``A0s[TE].mat``."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    if "classlabel" not in mat:
        raise ValueError(f"{path}: no 'classlabel' variable: not a BCIC-IV-2a true-label file")
    return np.asarray(mat["classlabel"]).astype(int).ravel()


@register_recipe("bcic2a")
class BCIC2a(Recipe):
    """BCIC-IV-2a motor imagery (4 classes), 16 bipolar channels, 4 s from the cue, subject split 1-5/6-7/8-9."""

    label_names = {0: "left_hand", 1: "right_hand", 2: "feet", 3: "tongue"}
    options = {
        "window_s": (4.0, "window length in seconds, from the cue"),
        "reject_uv": (None, "reject windows with |x| above this many µV (default: off)"),
        "notch": (50.0, "mains frequency (recorded in Austria: 50 Hz)"),
        "val_subjects": ("6,7", "comma-separated subject numbers for val"),
        "test_subjects": ("8,9", "comma-separated subject numbers for test; the others train"),
        "sessions": ("T,E", "sessions to include: T (training), E (evaluation)"),
        "cache_dir": (None, "where the MOABB .mat runs are written as FIF (default: system temp dir)"),
    }

    def config(self) -> PreprocessConfig:
        return PreprocessConfig(reference="bipolar", bipolar_pairs=list(PAIRS), window_s=float(self.opts["window_s"]),
                                reject_uv=self.opts["reject_uv"], notch=self.opts["notch"], montage="standard_1005")

    def _split(self, subject: int) -> str:
        val = _ints(self.opts["val_subjects"])
        test = _ints(self.opts["test_subjects"])
        return "val" if subject in val else "test" if subject in test else "train"

    def _sessions(self) -> set[str]:
        items = self.opts["sessions"]
        items = items if isinstance(items, (list, tuple)) else re.split(r"[,\s]+", str(items).strip())
        ses = {s.upper() for s in items if s}
        if not ses or ses - {"T", "E"}:
            raise ValueError(f"bcic2a: sessions must be among T, E, got {self.opts['sessions']!r}")
        return ses

    def _cache(self, source: Path) -> Path:
        if self.opts["cache_dir"]:
            return Path(self.opts["cache_dir"])
        key = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / "neuript_bcic2a" / key

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"bcic2a: source folder {source} does not exist")
        sessions = self._sessions()
        gdfs = [f for f in find_files(source, r"A0\d[TE]\.gdf") if f.stem[-1].upper() in sessions]
        recs: list[Recording] = []
        if gdfs:
            for f in gdfs:
                subj, ses = int(f.stem[2]), f.stem[-1].upper()
                lab = _label_file(f)
                if lab is None and ses == "E":
                    warnings.warn(f"bcic2a: {f} has no true-label file {f.stem}.mat (beside it or in true_labels/); "
                                  "its cues have no class, the session is skipped", UserWarning, stacklevel=2)
                    continue
                recs.append(Recording(path=f, dataset="bcic2a", subject=f"A{subj:02d}", session=ses,
                                      recording=f"bcic2a_A{subj:02d}{ses}", split=self._split(subj),
                                      extra={"layout": "gdf", "labels": str(lab) if lab else None}))
        else:
            mats = [f for f in find_files(source, r"A0\d[TE]\.mat") if f.stem[-1].upper() in sessions]
            if not mats:
                raise FileNotFoundError(
                    f"bcic2a: no A0s[TE].gdf (competition) or A0s[TE].mat (MOABB / BNCI 2014-001) files under "
                    f"{source}. Get https://www.bbci.de/competition/iv/ (dataset 2a, GDF + true labels) or the "
                    "BNCI Horizon files of 001-2014, and point --source at them.")
            cache = self._cache(source)
            for f in mats:
                subj, ses = int(f.stem[2]), f.stem[-1].upper()
                for k, fif in enumerate(self._convert(f, cache)):
                    recs.append(Recording(path=fif, dataset="bcic2a", subject=f"A{subj:02d}", session=ses,
                                          recording=f"bcic2a_A{subj:02d}{ses}_run{k}", split=self._split(subj),
                                          extra={"layout": "moabb", "mat": str(f)}))
        if not recs:
            raise FileNotFoundError(f"bcic2a: no usable session under {source}")
        return recs

    @staticmethod
    def _convert(mat: Path, cache: Path) -> list[Path]:
        """Write each run of a MOABB ``.mat`` as ``<cache>/<stem>_run<k>_raw.fif`` (once; atomic rename)."""
        cache.mkdir(parents=True, exist_ok=True)
        done = sorted(cache.glob(f"{mat.stem}_run*_raw.fif"))
        if done and all(p.stat().st_mtime >= mat.stat().st_mtime for p in done):
            return done
        out = []
        for k, run in enumerate(read_bnci_runs(mat)):
            dst = cache / f"{mat.stem}_run{k}_raw.fif"
            tmp = cache / f".{mat.stem}_run{k}.{os.getpid()}_raw.fif"
            bnci_run_to_raw(run).save(tmp, overwrite=True, verbose="error")
            os.replace(tmp, dst)
            out.append(dst)
        if not out:
            raise ValueError(f"{mat}: no run with trials (BNCI 2014-001 runs hold 48 trials each)")
        return out

    def events(self, raw, rec: Recording) -> Events:
        if rec.extra.get("layout") == "gdf":
            try:
                raw.rename_channels(gdf_channel_map(raw.ch_names))
            except ValueError as err:
                raise ValueError(f"{rec.path}: {err}") from None
            for name in raw.ch_names:
                if name.upper().startswith("EOG"):
                    raw.set_channel_types({name: "eog"}, verbose="error")
            lab = rec.extra.get("labels")
            true = read_true_labels(Path(lab)) if lab else None
        else:
            true = None
        ann = raw.annotations
        return cue_events(list(ann.description), np.asarray(ann.onset, float), true_labels=true, source=str(rec.path))
