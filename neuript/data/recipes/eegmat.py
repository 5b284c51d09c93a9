"""EEGMAT / MentalArithmetic (PhysioNet "EEG During Mental Arithmetic Tasks", Zyma et al. 2019).

Files ``SubjectNN_1.edf`` (rest, label 0, ~182 s) and ``SubjectNN_2.edf`` (serial subtraction, label 1, ~62 s);
19 EEG channels (old 10-20 names) + ``A2-A1`` + ECG at 500 Hz. Windows: 5 s, non-overlapping.

Split by subject as in the paper: Subject00-27 train, 28-31 val, 32-35 test. A subject missing from the source
folder is reported with a warning; its split may end up empty (no crash).

Montage option (``montage``): ``tcp`` (default) builds the 20-channel double banana the pretrained NeurIPT
encoder was trained on (spec §6 lists 20 channels for MentalArithmetic); ``average`` is the common average
reference of the 19 monopolar channels that spec §6 also lists for this dataset. The pretraining rules
(recordings under 5 min dropped, first/last minute cut) do not apply here and are off. Amplitude rejection is
off by default (``reject_uv`` option): a fine-tuning benchmark keeps every window; the peak amplitude of each
window is still stored (``max_abs_uv`` column) and flat / NaN windows are still rejected and counted.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Recipe, Recording, find_files, parse_int_set, register_recipe

SPLITS = {"train": range(0, 28), "val": range(28, 32), "test": range(32, 36)}


def subject_split(subject: int) -> str:
    """Paper split of EEGMAT subject number ``subject`` (0-based)."""
    for split, rng in SPLITS.items():
        if subject in rng:
            return split
    raise ValueError(f"EEGMAT has subjects 0-35, got {subject}")


@register_recipe("eegmat")
class EEGMAT(Recipe):
    """MentalArithmetic: rest (0) vs task (1), 5 s windows, subject split 00-27 / 28-31 / 32-35."""

    label_names = {0: "rest", 1: "task"}
    options = {
        "montage": ("tcp", "tcp (20-ch double banana, default) or average (CAR of the 19 channels)"),
        "window_s": (5.0, "window length in seconds"),
        "stride_s": (None, "stride in seconds (default: window, non-overlapping)"),
        "reject_uv": (None, "reject windows with |x| above this many µV (default: off)"),
        "notch": (50.0, "mains frequency (recorded in Ukraine: 50 Hz)"),
        "subjects": (None, "comma-separated subject numbers to include (default: all found)"),
    }

    def config(self) -> PreprocessConfig:
        ref = self.opts["montage"]
        if ref not in ("tcp", "average"):
            raise ValueError(f"eegmat: montage must be 'tcp' or 'average', got {ref!r}")
        return PreprocessConfig(reference=ref, window_s=float(self.opts["window_s"]),
                                stride_s=self.opts["stride_s"], reject_uv=self.opts["reject_uv"],
                                notch=self.opts["notch"])

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"eegmat: source folder {source} does not exist")
        files = find_files(source, r"Subject\d+_[12]\.edf")
        if not files:
            raise FileNotFoundError(f"eegmat: no SubjectNN_1.edf / SubjectNN_2.edf files under {source}. "
                                    "Download https://physionet.org/content/eegmat/1.0.0/ and point --source at it.")
        wanted = parse_int_set(self.opts["subjects"])
        recs = []
        found = set()
        for f in files:
            m = re.fullmatch(r"Subject(\d+)_([12])\.edf", f.name, flags=re.IGNORECASE)
            if not m:
                continue
            subj, run = int(m.group(1)), int(m.group(2))
            if wanted is not None and subj not in wanted:
                continue
            found.add(subj)
            recs.append(Recording(path=f, dataset="eegmat", subject=f"{subj:02d}", session=str(run),
                                  recording=f"eegmat_Subject{subj:02d}_{run}", split=subject_split(subj),
                                  label=0 if run == 1 else 1))
        for split, rng in SPLITS.items():
            present = [s for s in rng if s in found]
            expected = [s for s in rng if wanted is None or s in wanted]
            if expected and not present:
                warnings.warn(f"eegmat: no subjects of the {split!r} split ({rng.start:02d}-{rng.stop - 1:02d}) "
                              f"under {source}; that split will be empty", UserWarning, stacklevel=2)
            elif len(present) < len(expected):
                miss = sorted(set(expected) - set(present))
                warnings.warn(f"eegmat: {split!r} split is missing subjects {miss} under {source}",
                              UserWarning, stacklevel=2)
        runs: dict[int, set[int]] = {}
        for r in recs:
            runs.setdefault(int(r.subject), set()).add(int(r.session))
        for s, rr in sorted(runs.items()):
            if rr != {1, 2}:
                warnings.warn(f"eegmat: Subject{s:02d} has only run(s) {sorted(rr)}", UserWarning, stacklevel=2)
        return recs
