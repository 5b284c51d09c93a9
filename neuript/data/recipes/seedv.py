"""SEED-V (Liu et al. 2021, BCMI lab, SJTU) — five-class emotion recognition.

Layout as distributed (after the signed licence): ``EEG_raw/<subject>_<session>_<date>.cnt``, e.g.
``1_1_20180804.cnt`` (16 subjects x 3 sessions), Neuroscan CNT read by MNE's ``read_raw_cnt``: 62 EEG channels in
upper case (``FP1``, ``FPZ``, ..., ``CB1``, ``O1``, ``OZ``, ``O2``, ``CB2``) plus ``M1``, ``M2``, ``VEO``, ``HEO``, at
1000 Hz. The processed folders (``EEG_DE_features``, ``Eye_movement_features``) hold features, not signals, and are
not used. The trial boundaries are not in the files: each session showed 15 film clips at fixed times, published
with the dataset (and used by CBraMod's preprocessing); they are :data:`TRIALS` below, in seconds from the start of
the recording, with the emotion of each clip in :data:`TRIAL_LABELS`.

Labels: disgust 0, fear 1, sad 2, neutral 3, happy 4 (the dataset's own coding). Windows: 1 s, non-overlapping,
inside each clip (spec §6). Channels: the 17 monopolar channels of spec §8 (Fp1, Fp2, F7, F3, F4, F8, T7, C3, Cz,
C4, T8, P7, P3, P4, P8, O1, O2), as recorded (reference electrode of the cap); band-pass 0.1-30 Hz (spec §6), notch
50 Hz (recorded in China). Amplitude rejection is off.

Split by subject (spec §6: "subjects 1-10 / 11-15"): 1-10 train, 11-15 test; subject 16, which the spec does not
list, is the validation subject by default so that fine-tuning has a val split (``--set val_subjects=`` empties
it). CBraMod instead splits each session's 15 clips 5/5/5 (``--set split=trials``).

``extension`` (default ``cnt``) lets a copy converted to EDF/FIF with the same names be read instead.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Events, Recipe, Recording, find_files, parse_int_set, register_recipe


def _ints(value) -> set[int]:
    """``"1,2"`` / ``[1, 2]`` / ``"none"`` / ``""`` → a set of ints (empty for none)."""
    return set() if value is None or str(value).strip().lower() in ("", "none") else parse_int_set(value)


#: spec §8 SEED-V channel set, in order
CHANNELS = ["Fp1", "Fp2", "F7", "F3", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "P4", "P8", "O1", "O2"]

#: clip start / end seconds per session (SEED-V release; identical in CBraMod's preprocessing script)
TRIALS = {
    1: ([30, 132, 287, 555, 773, 982, 1271, 1628, 1730, 2025, 2227, 2435, 2667, 2932, 3204],
        [102, 228, 524, 742, 920, 1240, 1568, 1697, 1994, 2166, 2401, 2607, 2901, 3172, 3359]),
    2: ([30, 299, 548, 646, 836, 1000, 1091, 1392, 1657, 1809, 1966, 2186, 2333, 2490, 2741],
        [267, 488, 614, 773, 967, 1059, 1331, 1622, 1777, 1908, 2153, 2302, 2428, 2709, 2817]),
    3: ([30, 353, 478, 674, 825, 908, 1200, 1346, 1451, 1711, 2055, 2307, 2457, 2726, 2888],
        [321, 418, 643, 764, 877, 1147, 1284, 1418, 1679, 1996, 2275, 2425, 2664, 2857, 3066]),
}
#: emotion of each clip per session (0 disgust, 1 fear, 2 sad, 3 neutral, 4 happy)
TRIAL_LABELS = {
    1: [4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0],
    2: [2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0],
    3: [2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0],
}
#: CBraMod's clip split (``split=trials``): clip index ranges per split
TRIAL_SPLIT = {"train": range(0, 5), "val": range(5, 10), "test": range(10, 15)}


def session_events(session: int, *, trials: set[int] | None = None) -> Events:
    """The 15 clips of ``session`` (1-3) as labelled intervals (``mode="locked"``), optionally only the clip
    indices in ``trials`` (0-based)."""
    if session not in TRIALS:
        raise ValueError(f"SEED-V has sessions 1-3, got {session}")
    starts, ends = (np.asarray(a, float) for a in TRIALS[session])
    labels = np.asarray(TRIAL_LABELS[session], np.int64)
    if trials is not None:
        labels = np.where(np.isin(np.arange(15), sorted(trials)), labels, -1)
    return Events(starts, ends - starts, labels, mode="locked")


@register_recipe("seedv")
class SEEDV(Recipe):
    """SEED-V emotions (5 classes), 17 monopolar channels, 1 s windows inside the film clips."""

    label_names = {0: "disgust", 1: "fear", 2: "sad", 3: "neutral", 4: "happy"}
    options = {
        "window_s": (1.0, "window length in seconds"),
        "stride_s": (None, "stride in seconds (default: window, non-overlapping)"),
        "reject_uv": (None, "reject windows with |x| above this many µV (default: off)"),
        "notch": (50.0, "mains frequency (recorded in China: 50 Hz)"),
        "split": ("subjects", "subjects (spec §6) or trials (CBraMod: clips 1-5 / 6-10 / 11-15 of every session)"),
        "val_subjects": ("16", "subjects for val with split=subjects"),
        "test_subjects": ("11,12,13,14,15", "subjects for test with split=subjects; the others train"),
        "extension": ("cnt", "file extension of the raw recordings (cnt as distributed; edf/fif for converted copies)"),
    }

    def config(self) -> PreprocessConfig:
        # CB1/CB2 (cerebellar) and VEO/HEO have no 10-05 name; they are dropped before the 17 are picked
        return PreprocessConfig(reference="as_recorded", channels=list(CHANNELS), drop_unknown=True,
                                window_s=float(self.opts["window_s"]), stride_s=self.opts["stride_s"],
                                reject_uv=self.opts["reject_uv"], notch=self.opts["notch"], montage="standard_1020")

    def _split(self, subject: int) -> str:
        val = _ints(self.opts["val_subjects"])
        test = _ints(self.opts["test_subjects"])
        return "val" if subject in val else "test" if subject in test else "train"

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"seedv: source folder {source} does not exist")
        mode = self.opts["split"]
        if mode not in ("subjects", "trials"):
            raise ValueError(f"seedv: split must be 'subjects' or 'trials', got {mode!r}")
        ext = str(self.opts["extension"]).lstrip(".")
        pat = rf"(\d+)_(\d)_(\d+)\.{re.escape(ext)}"
        files = find_files(source, pat)
        if not files:
            raise FileNotFoundError(f"seedv: no <subject>_<session>_<date>.{ext} files (e.g. 1_1_20180804.{ext}) "
                                    f"under {source}. Point --source at the EEG_raw folder of SEED-V "
                                    "(https://bcmi.sjtu.edu.cn/home/seed/seed-v.html).")
        recs = []
        for f in files:
            m = re.fullmatch(pat, f.name, flags=re.IGNORECASE)
            subj, sess = int(m.group(1)), int(m.group(2))
            if sess not in TRIALS:
                raise ValueError(f"seedv: {f} names session {sess}; SEED-V has sessions 1-3")
            splits = ["train", "val", "test"] if mode == "trials" else [self._split(subj)]
            for split in splits:
                suffix = f"_{split}" if mode == "trials" else ""
                recs.append(Recording(path=f, dataset="seedv", subject=f"{subj:02d}", session=str(sess),
                                      recording=f"seedv_{subj:02d}_{sess}{suffix}", split=split,
                                      extra={"session": sess}))
        sessions: dict[int, set[int]] = {}
        for r in recs:
            sessions.setdefault(int(r.subject), set()).add(int(r.extra["session"]))
        for s, ss in sorted(sessions.items()):
            if ss != {1, 2, 3}:
                warnings.warn(f"seedv: subject {s} has only session(s) {sorted(ss)} under {source}",
                              UserWarning, stacklevel=2)
        return recs

    def events(self, raw, rec: Recording) -> Events:
        trials = set(TRIAL_SPLIT[rec.split]) if self.opts["split"] == "trials" else None
        ev = session_events(int(rec.extra["session"]), trials=trials)
        end = raw.n_times / raw.info["sfreq"]
        if ev.onsets[-1] + ev.durations[-1] > end + 1.0:
            warnings.warn(f"{rec.path}: recording ends at {end:.0f} s, before the last clip of session "
                          f"{rec.extra['session']} ({ev.onsets[-1] + ev.durations[-1]:.0f} s); the clips past the end "
                          "give no windows", UserWarning, stacklevel=2)
        return ev
