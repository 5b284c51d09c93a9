"""Sleep-EDFx (PhysioNet "Sleep-EDF Database Expanded", Kemp et al. 2000) — 5-class sleep staging.

Each night is a pair ``SC4ssNE0-PSG.edf`` (signals; EEG ``Fpz-Cz`` and ``Pz-Oz`` at 100 Hz, plus EOG, EMG,
respiration, temperature, event marker) and ``SC4ssNx-Hypnogram.edf`` (EDF+ annotations ``Sleep stage W/1/2/3/4/R/?``,
``Movement time``). Files pair by their first 7 characters (``SC4001E``/``SC4001``); ``ss`` is the subject.

Labels (AASM): W=0, N1=1, N2=2, N3=3 (R&K stages 3 and 4 merged), REM=4; ``?`` and movement time are not
used. Windows: 30 s, locked to the hypnogram epochs. By default wake is trimmed to ``trim_wake_min`` minutes
before the first and after the last sleep epoch (the usual practice; the recordings are ~22 h mostly awake).
Channels: the two recorded bipolar derivations ``Fpz-Cz``, ``Pz-Oz`` (spec §1). Spec §6 lists common average
reference for Sleep-EDFx, which is undefined for two bipolar channels, so the channels are kept as recorded.
Split by subject: ``ss % 10 == 8`` → val, ``== 9`` → test, else train (options ``val_subjects``/``test_subjects``
override).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Events, Recipe, Recording, parse_int_set, find_files, register_recipe

STAGES = {"Sleep stage W": 0, "Sleep stage 1": 1, "Sleep stage 2": 2, "Sleep stage 3": 3, "Sleep stage 4": 3,
          "Sleep stage R": 4}


def hypnogram_events(annotations, *, epoch_s: float = 30.0, trim_wake_min: float | None = 30.0) -> Events:
    """Convert Sleep-EDF hypnogram annotations to labelled 30 s epochs.

    Parameters
    ----------
    annotations : mne.Annotations
        From :func:`mne.read_annotations` on a ``*-Hypnogram.edf``.
    epoch_s : float
        Scoring epoch length.
    trim_wake_min : float or None
        Keep only wake within this many minutes of sleep; None keeps all wake.

    Returns
    -------
    Events
        One entry per scored epoch (``mode="locked"``); unknown stages / movement get label -1.
    """
    onsets, labels = [], []
    for on, du, desc in zip(annotations.onset, annotations.duration, annotations.description):
        lab = STAGES.get(desc.strip(), -1)
        n = int(round(du / epoch_s))
        for k in range(n):
            onsets.append(on + k * epoch_s)
            labels.append(lab)
    onsets_a = np.asarray(onsets, float)
    labels_a = np.asarray(labels, np.int64)
    if trim_wake_min is not None and (labels_a > 0).any():
        sleep = np.flatnonzero(labels_a > 0)
        lo = onsets_a[sleep[0]] - trim_wake_min * 60
        hi = onsets_a[sleep[-1]] + trim_wake_min * 60
        labels_a = np.where((onsets_a < lo) | (onsets_a > hi), -1, labels_a)
    return Events(onsets_a, np.full(len(onsets_a), epoch_s), labels_a, mode="locked")


def pair_files(source: Path) -> list[tuple[Path, Path]]:
    """(PSG, hypnogram) pairs under ``source``; a PSG without hypnogram raises naming it."""
    psgs = find_files(source, r".*-PSG\.edf")
    hyps = {h.name[:6]: h for h in find_files(source, r".*-Hypnogram\.edf")}
    pairs = []
    for p in psgs:
        h = hyps.get(p.name[:6])
        if h is None:
            raise FileNotFoundError(f"sleep_edfx: {p} has no matching {p.name[:6]}??-Hypnogram.edf next to it")
        pairs.append((p, h))
    return pairs


@register_recipe("sleep_edfx")
class SleepEDFx(Recipe):
    """Sleep staging W/N1/N2/N3/REM on Fpz-Cz + Pz-Oz, 30 s epochs."""

    label_names = {0: "W", 1: "N1", 2: "N2", 3: "N3", 4: "REM"}
    options = {
        "trim_wake_min": (30.0, "wake kept around sleep, minutes (none = all)"),
        "reject_uv": (None, "amplitude rejection threshold in µV (default: off)"),
        "notch": (50.0, "mains frequency"),
        "val_subjects": (None, "comma-separated subject numbers for val (default: ss % 10 == 8)"),
        "test_subjects": (None, "comma-separated subject numbers for test (default: ss % 10 == 9)"),
    }

    def config(self) -> PreprocessConfig:
        return PreprocessConfig(reference="bipolar", bipolar_pairs=["Fpz-Cz", "Pz-Oz"], window_s=30.0,
                                reject_uv=self.opts["reject_uv"], notch=self.opts["notch"])

    def _split(self, subj: int) -> str:
        val, test = parse_int_set(self.opts["val_subjects"]), parse_int_set(self.opts["test_subjects"])
        if val is not None or test is not None:
            return "val" if val and subj in val else "test" if test and subj in test else "train"
        return {8: "val", 9: "test"}.get(subj % 10, "train")

    def recordings(self, source: Path) -> list[Recording]:
        recs = []
        for psg, hyp in pair_files(Path(source)):
            m = re.match(r"S[CT]\d(\d{2})(\d)", psg.name)
            if not m:
                continue
            subj, night = int(m.group(1)), m.group(2)
            recs.append(Recording(path=psg, dataset="sleep_edfx", subject=f"{subj:02d}", session=night,
                                  recording=f"sleep_edfx_{psg.name[:7]}", split=self._split(subj),
                                  extra={"hypnogram": str(hyp)}))
        if not recs:
            raise FileNotFoundError(f"sleep_edfx: no *-PSG.edf files under {source}. Download "
                                    "https://physionet.org/content/sleep-edfx/1.0.0/ and point --source at it.")
        return recs

    def events(self, raw, rec: Recording) -> Events:
        import mne

        ann = mne.read_annotations(rec.extra["hypnogram"])
        return hypnogram_events(ann, trim_wake_min=self.opts["trim_wake_min"])
