"""EEGMMIDB (PhysioNet "EEG Motor Movement/Imagery Dataset", Schalk et al. 2004) — pretraining corpus.

Files ``SNNN/SNNNRkk.edf`` (64 ch, 160 Hz, names like ``Fc5.``). Every run gives pretraining windows (4 s).
Labels come from the T0/T1/T2 annotations with the run-dependent meaning:

* runs 3, 4, 7, 8, 11, 12: T1 = left fist (1), T2 = right fist (2)
* runs 5, 6, 9, 10, 13, 14: T1 = both fists (3), T2 = both feet (4)
* T0 = rest (0); runs 1, 2 are eyes-open / eyes-closed baselines (5 / 6 for the whole run).

``windows="sliding"`` (default) cuts every run into fixed windows, each labelled by the annotation it starts
in (``-1`` if none); ``windows="events"`` gives one window per T0/T1/T2 trial starting at its onset.
The pretraining rules of spec §1 (``min_duration_s`` 300, crop 60 s at both ends) are options, off by default
because EEGMMIDB runs are 1-2 minutes long and would all be dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Events, Recipe, Recording, parse_int_set, find_files, register_recipe

HANDS_RUNS = {3, 4, 7, 8, 11, 12}
FISTS_FEET_RUNS = {5, 6, 9, 10, 13, 14}
LABELS = {0: "rest", 1: "left_fist", 2: "right_fist", 3: "both_fists", 4: "both_feet",
          5: "baseline_eyes_open", 6: "baseline_eyes_closed"}


def annotation_label(run: int, description: str) -> int:
    """Label of annotation ``description`` (T0/T1/T2) in run ``run``; -1 if it has none."""
    d = description.strip().upper()
    if run == 1:
        return 5
    if run == 2:
        return 6
    if d == "T0":
        return 0
    if run in HANDS_RUNS:
        return {"T1": 1, "T2": 2}.get(d, -1)
    if run in FISTS_FEET_RUNS:
        return {"T1": 3, "T2": 4}.get(d, -1)
    return -1


@register_recipe("eegmmidb")
class EEGMMIDB(Recipe):
    """Motor movement/imagery runs for pretraining (split ``pretrain``), 4 s windows, TCP montage."""

    label_names = LABELS
    options = {
        "montage": ("tcp", "tcp (20-ch double banana), average or as_recorded (64 monopolar channels)"),
        "window_s": (4.0, "window length in seconds"),
        "stride_s": (None, "stride in seconds (default: window)"),
        "windows": ("sliding", "sliding (whole runs) or events (one window per T0/T1/T2 trial)"),
        "reject_uv": (100.0, "reject windows with |x| above this many µV (pretraining rule)"),
        "notch": (60.0, "mains frequency (recorded in the USA: 60 Hz)"),
        "min_duration_s": (None, "drop recordings shorter than this (pretraining rule: 300)"),
        "crop_s": (0.0, "seconds cut at both ends (pretraining rule: 60)"),
        "split": ("pretrain", "split name given to every window"),
        "subjects": (None, "comma-separated subject numbers to include"),
        "runs": (None, "comma-separated run numbers to include"),
    }

    def config(self) -> PreprocessConfig:
        return PreprocessConfig(reference=self.opts["montage"], window_s=float(self.opts["window_s"]),
                                stride_s=self.opts["stride_s"], reject_uv=self.opts["reject_uv"],
                                notch=self.opts["notch"], min_duration_s=self.opts["min_duration_s"],
                                crop_start_s=float(self.opts["crop_s"]), crop_end_s=float(self.opts["crop_s"]))

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"eegmmidb: source folder {source} does not exist")

        subjects, runs = parse_int_set(self.opts["subjects"]), parse_int_set(self.opts["runs"])
        recs = []
        for f in find_files(source, r"S\d{3}R\d{2}\.edf"):
            m = re.fullmatch(r"S(\d{3})R(\d{2})\.edf", f.name, flags=re.IGNORECASE)
            if not m:
                continue
            s, r = int(m.group(1)), int(m.group(2))
            if (subjects and s not in subjects) or (runs and r not in runs):
                continue
            recs.append(Recording(path=f, dataset="eegmmidb", subject=f"S{s:03d}", session=f"R{r:02d}",
                                  recording=f"eegmmidb_S{s:03d}R{r:02d}", split=self.opts["split"],
                                  label={1: 5, 2: 6}.get(r, -1), extra={"run": r}))
        if not recs:
            raise FileNotFoundError(f"eegmmidb: no SNNNRkk.edf files under {source}. Download "
                                    "https://physionet.org/content/eegmmidb/1.0.0/ and point --source at it.")
        return recs

    def events(self, raw, rec: Recording) -> Events | None:
        run = int(rec.extra["run"])
        if run in (1, 2):
            return None  # baselines: every window carries the run's label (Recording.label)
        ann = raw.annotations
        onsets = np.asarray(ann.onset, dtype=float)
        labels = np.asarray([annotation_label(run, d) for d in ann.description], dtype=np.int64)
        durations = np.asarray(ann.duration, dtype=float)
        mode = self.opts["windows"]
        if mode not in ("sliding", "events"):
            raise ValueError(f"eegmmidb: windows must be 'sliding' or 'events', got {mode!r}")
        return Events(onsets, durations, labels, mode="interval" if mode == "sliding" else "locked")
