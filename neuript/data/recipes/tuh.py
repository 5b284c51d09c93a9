"""TUAB and TUEV (Temple University Hospital EEG corpus subsets; Obeid & Picone 2016), recipes ``tuab`` and ``tuev``.

Both are distributed (after the signed agreement) as trees of EDF files with TUH channel names ``EEG FP1-REF``,
``EEG F7-REF``, ..., ``EEG T3-REF`` (old 10-20 names; ``-LE`` instead of ``-REF`` in the ``02_tcp_le`` montage) plus
non-EEG channels (``EEG EKG1-REF``, ``EMG-REF``, ``PHOTIC-REF``, ``IBI``, ``BURSTS``, ``SUPPR``, numbered ``EEG 26-REF``
...), mostly at 250 Hz (some 256/400/512 Hz). Both recipes build the 20-channel TCP double banana of spec §8 from
the monopolar channels and band-pass 0.1-30 Hz (spec §6); notch 60 Hz (USA). Amplitude rejection is off.

**TUAB** (abnormal EEG, v2.0.0 / v3.0.x): ``edf/{train,eval}/{normal,abnormal}/01_tcp_ar/.../<subject>_s<session>
_t<take>.edf`` (v2 nests ``<nnn>/<subject>/s<session>_<date>/``). Labels normal 0, abnormal 1 (from the folder).
Windows: 10 s, non-overlapping over the whole recording (spec §6).

**TUEV** (EEG events, v2.0.x): ``edf/{train,eval}/<subject>/<subject>_<nnnnnnnn>.edf`` with an event file of the same
stem ``.rec``: one line per event ``channel,start,stop,label`` (channel = index in the TCP montage, times in
seconds, label 1-6 = SPSW, GPED, PLED, EYEM, ARTF, BCKG). Labels SPSW 0, GPED 1, PLED 2, EYEM 3, ARTF 4, BCKG 5.
Windows: 5 s per event, from 2 s before its start (the 1 s events then sit in the middle; BIOT/LaBraM/CBraMod's
convention, without their wrap-around padding at the recording edges: events within 2 s of an edge give no
window). An event marked on several channels gives one window per line, as in the literature (``dedupe=true``
keeps one per start/stop/label). A file without ``.rec`` warns and is skipped.

Split (both, the official division): ``eval`` → test; ``train`` → train and val by subject, ``val_fraction`` (0.2)
of the training subjects, drawn with ``numpy.random.default_rng(seed)`` from the sorted subject list (BIOT/LaBraM
shuffle 80/20 by subject the same way, but from ``os.listdir`` order, so their exact val subjects cannot be
reproduced).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from neuript.data.preprocess import PreprocessConfig
from neuript.data.recipes import Events, Recipe, Recording, find_files, register_recipe

TUEV_CLASSES = {1: "SPSW", 2: "GPED", 3: "PLED", 4: "EYEM", 5: "ARTF", 6: "BCKG"}
#: seconds of context before a TUEV event's start
TUEV_PRE_S = 2.0


def subject_of(path: Path) -> str:
    """TUH subject id: the file name up to the first ``_`` (``aaaaaaaa_s001_t000.edf`` → ``aaaaaaaa``)."""
    return path.stem.split("_")[0]


def official_part(path: Path, source: Path) -> str:
    """``train`` or ``eval`` from the folder names between ``source`` and the file.

    Raises
    ------
    ValueError
        Neither (or both) appear: not the official TUH layout.
    """
    parts = {p.lower() for p in path.relative_to(source).parts[:-1]}
    found = parts & {"train", "eval"}
    if len(found) != 1:
        raise ValueError(f"{path}: expected it under a 'train' or 'eval' folder (official TUH layout "
                         "edf/train/..., edf/eval/...); point --source at the corpus root")
    return found.pop()


def train_val_split(subjects, *, val_fraction: float, seed: int) -> set[str]:
    """The validation subjects: ``round(val_fraction * n)`` of the sorted ``subjects``, drawn with ``seed``."""
    subs = sorted(set(subjects))
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * len(subs)))
    perm = np.random.default_rng(seed).permutation(len(subs))
    return {subs[i] for i in perm[:n_val]}


def read_rec(path: Path) -> np.ndarray:
    """A TUEV ``.rec`` file as an (n, 4) float array: channel, start (s), stop (s), label (1-6).

    Raises
    ------
    ValueError
        A line that is not four comma-separated numbers, or a label outside 1-6 (names file and line).
    """
    rows = []
    for k, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(",")
        try:
            row = [float(x) for x in parts]
        except ValueError:
            row = []
        if len(row) != 4:
            raise ValueError(f"{path}: line {k} {line!r} is not 'channel,start,stop,label'")
        if int(row[3]) not in TUEV_CLASSES:
            raise ValueError(f"{path}: line {k}: label {row[3]:g} is not one of 1-6 ({TUEV_CLASSES})")
        rows.append(row)
    return np.asarray(rows, float).reshape(-1, 4)


class _TUH(Recipe):
    """Shared options and split of the TUH recipes."""

    options = {
        "window_s": (10.0, "window length in seconds"),
        "reject_uv": (None, "reject windows with |x| above this many µV (default: off)"),
        "notch": (60.0, "mains frequency (recorded in the USA: 60 Hz)"),
        "val_fraction": (0.2, "fraction of the official training subjects used for val"),
        "seed": (12345, "seed of the train/val subject draw"),
    }

    def config(self) -> PreprocessConfig:
        return PreprocessConfig(reference="tcp", window_s=float(self.opts["window_s"]),
                                reject_uv=self.opts["reject_uv"], notch=self.opts["notch"])

    def _assign(self, items: list[tuple[Path, str]]) -> dict[Path, str]:
        train_subs = [subject_of(p) for p, part in items if part == "train"]
        val = train_val_split(train_subs, val_fraction=float(self.opts["val_fraction"]), seed=int(self.opts["seed"]))
        return {p: "test" if part == "eval" else "val" if subject_of(p) in val else "train" for p, part in items}

    def _warn_missing(self, recs: list[Recording], source: Path) -> None:
        for part, splits in (("train", ("train",)), ("eval", ("test",))):
            if not any(r.split in splits for r in recs):
                warnings.warn(f"{self.name}: no files under an '{part}' folder of {source}; that split will be empty",
                              UserWarning, stacklevel=3)


@register_recipe("tuab")
class TUAB(_TUH):
    """TUAB: normal (0) vs abnormal (1) EEG, 10 s windows, official train/eval, 80/20 train/val by subject."""

    label_names = {0: "normal", 1: "abnormal"}
    options = dict(_TUH.options)

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"tuab: source folder {source} does not exist")
        files = find_files(source, r".*\.edf")
        if not files:
            raise FileNotFoundError(f"tuab: no .edf files under {source}; point --source at the TUAB root "
                                    "(the folder holding edf/train and edf/eval)")
        items, labels = [], {}
        for f in files:
            part = official_part(f, source)
            parts = {p.lower() for p in f.relative_to(source).parts[:-1]}
            cls = parts & {"normal", "abnormal"}
            if len(cls) != 1:
                raise ValueError(f"{f}: expected it under a 'normal' or 'abnormal' folder (TUAB layout "
                                 "edf/<train|eval>/<normal|abnormal>/01_tcp_ar/...)")
            labels[f] = 1 if cls.pop() == "abnormal" else 0
            items.append((f, part))
        split = self._assign(items)
        recs = [Recording(path=f, dataset="tuab", subject=subject_of(f), session=f.stem,
                          recording=f"tuab_{part}_{'abnormal' if labels[f] else 'normal'}_{f.stem}", split=split[f],
                          label=labels[f], extra={"official": part}) for f, part in items]
        self._warn_missing(recs, source)
        return recs


@register_recipe("tuev")
class TUEV(_TUH):
    """TUEV: six event classes, 5 s windows around each event, official train/eval, 80/20 train/val by subject."""

    label_names = {k - 1: v for k, v in TUEV_CLASSES.items()}
    options = {**_TUH.options, "window_s": (5.0, "window length in seconds"),
               "pre_s": (TUEV_PRE_S, "seconds of context before each event's start"),
               "dedupe": (False, "one window per (start, stop, label) instead of one per .rec line")}

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"tuev: source folder {source} does not exist")
        files = find_files(source, r".*\.edf")
        if not files:
            raise FileNotFoundError(f"tuev: no .edf files under {source}; point --source at the TUEV root "
                                    "(the folder holding edf/train and edf/eval)")
        items = []
        for f in files:
            rec = f.with_suffix(".rec")
            if not rec.exists():
                warnings.warn(f"tuev: {f} has no event file {rec.name} beside it; skipped", UserWarning, stacklevel=2)
                continue
            items.append((f, official_part(f, source)))
        if not items:
            raise FileNotFoundError(f"tuev: no .edf file under {source} has its .rec event file")
        split = self._assign(items)
        recs = [Recording(path=f, dataset="tuev", subject=subject_of(f), session=f.stem,
                          recording=f"tuev_{part}_{f.stem}", split=split[f],
                          extra={"official": part, "rec": str(f.with_suffix(".rec"))}) for f, part in items]
        self._warn_missing(recs, source)
        return recs

    def events(self, raw, rec: Recording) -> Events:
        ev = read_rec(Path(rec.extra["rec"]))
        if self.opts["dedupe"] and len(ev):
            _, first = np.unique(ev[:, 1:], axis=0, return_index=True)
            ev = ev[np.sort(first)]
        start, lab = ev[:, 1], ev[:, 3].astype(np.int64) - 1
        pre = float(self.opts["pre_s"])
        # one window per event (duration 0): [start - pre, start - pre + window)
        return Events(start - pre, np.zeros(len(start)), lab, mode="locked")
