"""Mumtaz2016 (Mumtaz et al., "MDD Patients and Healthy Controls EEG Data", figshare 2016) — depression vs healthy.

Layout as distributed on figshare: one flat folder of EDF files named ``<group> S<n> <condition>.edf``, e.g.
``H S1 EO.edf``, ``H S1 EC.edf``, ``H S1 TASK.edf``, ``MDD S1 EO.edf``, ``MDD S12 EC.edf`` (group ``H`` = healthy
control, ``MDD`` = major depressive disorder; condition ``EO`` eyes open, ``EC`` eyes closed, ``TASK`` P300 task).
Each file holds 19 EEG channels of the 10-20 system, linked-ear referenced, named ``EEG Fp1-LE`` ... ``EEG O2-LE``
(old names T3/T4/T5/T6), plus ``EEG A2-A1`` and two unused channels ``EEG 23A-23R`` / ``EEG 24A-24R``, at 256 Hz.

Labels: healthy = 0, MDD = 1 (every window of a file carries its group's label). Windows: 5 s, non-overlapping
(spec §6). Conditions: ``EO`` and ``EC`` by default (the resting recordings); ``--set conditions=EO,EC,TASK`` adds
the task runs.

Channels: spec §8 lists the 20-channel TCP double banana for Mumtaz (``montage=tcp``, default, built from the 19
monopolar electrodes); spec §6 also lists common average reference, available as ``montage=average`` (19
channels). Amplitude rejection is off (a fine-tuning benchmark keeps every window; flat/NaN windows are still
rejected).

Split (spec §6: "24+19 / 5+4 / 5+5 subjects"): within each group, subjects sorted by number; MDD: the first 24
train, next 5 val, last 5 test; H: the first 19 train, next 4 val, last 5 test. The counts are options
(``mdd_counts``, ``h_counts``). When the folder holds a different number of subjects than the counts add up to,
a warning says so and the remaining subjects go to test.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Recipe, Recording, find_files, register_recipe

FILE_RE = r"(H|MDD)\s*S(\d+)\s*(EO|EC|TASK)\.edf"
GROUP_LABEL = {"H": 0, "MDD": 1}
SPLIT_ORDER = ("train", "val", "test")


def _counts(value, key: str) -> list[int]:
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value).strip())
    out = [int(x) for x in items if str(x) != ""]
    if len(out) != 3 or min(out) < 0:
        raise ValueError(f"mumtaz: {key} must be three non-negative counts train,val,test, got {value!r}")
    return out


def group_split(subjects: list[int], counts: list[int]) -> dict[int, str]:
    """Assign ``subjects`` (sorted by number) to train/val/test by the ``counts`` (train, val, test);
    subjects past the total go to test."""
    out = {}
    bounds = [counts[0], counts[0] + counts[1]]
    for rank, s in enumerate(sorted(subjects)):
        out[s] = "train" if rank < bounds[0] else "val" if rank < bounds[1] else "test"
    return out


@register_recipe("mumtaz")
class Mumtaz(Recipe):
    """Mumtaz2016: healthy (0) vs MDD (1), 5 s windows, subject split 24+19 / 5+4 / 5+5."""

    label_names = {0: "healthy", 1: "MDD"}
    options = {
        "montage": ("tcp", "tcp (20-ch double banana, default) or average (CAR of the 19 channels)"),
        "conditions": ("EO,EC", "comma-separated conditions to include: EO, EC, TASK"),
        "window_s": (5.0, "window length in seconds"),
        "stride_s": (None, "stride in seconds (default: window, non-overlapping)"),
        "reject_uv": (None, "reject windows with |x| above this many µV (default: off)"),
        "notch": (50.0, "mains frequency (recorded in Malaysia: 50 Hz)"),
        "mdd_counts": ("24,5,5", "MDD subjects in train,val,test (by subject number order)"),
        "h_counts": ("19,4,5", "healthy subjects in train,val,test (by subject number order)"),
    }

    def config(self) -> PreprocessConfig:
        ref = self.opts["montage"]
        if ref not in ("tcp", "average"):
            raise ValueError(f"mumtaz: montage must be 'tcp' or 'average', got {ref!r}")
        # the two unused channels (EEG 23A-23R, EEG 24A-24R) have no electrode name: CAR must drop them
        return PreprocessConfig(reference=ref, window_s=float(self.opts["window_s"]), stride_s=self.opts["stride_s"],
                                reject_uv=self.opts["reject_uv"], notch=self.opts["notch"],
                                drop_unknown=ref == "average")

    def _conditions(self) -> set[str]:
        items = self.opts["conditions"]
        items = items if isinstance(items, (list, tuple)) else re.split(r"[,\s]+", str(items).strip())
        conds = {c.upper() for c in items if c}
        bad = conds - {"EO", "EC", "TASK"}
        if bad or not conds:
            raise ValueError(f"mumtaz: conditions must be among EO, EC, TASK, got {self.opts['conditions']!r}")
        return conds

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"mumtaz: source folder {source} does not exist")
        conds = self._conditions()
        files = find_files(source, FILE_RE)
        if not files:
            raise FileNotFoundError(
                f"mumtaz: no '<H|MDD> S<n> <EO|EC|TASK>.edf' files (e.g. 'H S1 EO.edf', 'MDD S1 EC.edf') under "
                f"{source}. Download https://figshare.com/articles/dataset/EEG_Data_New/4244171 and point --source "
                "at the folder of EDF files.")
        found: dict[str, dict[int, list[tuple[Path, str]]]] = {"H": {}, "MDD": {}}
        for f in files:
            m = re.fullmatch(FILE_RE, f.name, flags=re.IGNORECASE)
            group, subj, cond = m.group(1).upper(), int(m.group(2)), m.group(3).upper()
            if cond in conds:
                found[group].setdefault(subj, []).append((f, cond))
        recs = []
        for group, key in (("MDD", "mdd_counts"), ("H", "h_counts")):
            counts = _counts(self.opts[key], key)
            subjects = sorted(found[group])
            if subjects and len(subjects) != sum(counts):
                warnings.warn(f"mumtaz: {len(subjects)} {group} subjects under {source}, but {key}={counts} adds up "
                              f"to {sum(counts)}; subjects are assigned in number order, the rest go to test",
                              UserWarning, stacklevel=2)
            if not subjects:
                warnings.warn(f"mumtaz: no {group} files under {source}; that class will be missing",
                              UserWarning, stacklevel=2)
            split = group_split(subjects, counts)
            for subj in subjects:
                for f, cond in sorted(found[group][subj], key=lambda t: t[1]):
                    recs.append(Recording(path=f, dataset="mumtaz", subject=f"{group}{subj:02d}", session=cond,
                                          recording=f"mumtaz_{group}_S{subj:02d}_{cond}", split=split[subj],
                                          label=GROUP_LABEL[group]))
        if not recs:
            raise FileNotFoundError(f"mumtaz: no files of the conditions {sorted(conds)} under {source}")
        return recs
