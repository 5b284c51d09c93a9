"""PhysioNet P300 ("ERP-based Brain-Computer Interface recordings", erpbci v1.0.0; Citi, Poli & Cinel 2010).

Layout as distributed on PhysioNet: ``files/sNN/rcNN.edf`` (subjects s01-s12, one EDF+ record per spelled
character). Each record: BioSemi ActiveTwo at 2048 Hz, 64 EEG channels with 10-10 names (``Fp1``, ``AF7``, ...,
``O2``), earlobes ``EARL``/``EARR`` and EOG ``VEOGL``/``VEOGR``/``HEOGL``/``HEOGR``. EDF+ annotations: ``#Tgt<c>...``
gives the target character ``c`` (fifth character of the annotation), ``#start`` / ``#end`` frame the run, other
``#...`` annotations are bookkeeping (e.g. ``#counted20of20``), and every flash of a row or column of the 6x6
speller is one annotation holding the six characters flashed (e.g. ``ABCDEF``, ``AGMSY5``; from subject 6 on
``_`` is written ``#``).

Labels: a flash whose characters contain the target is ``target`` (1), else ``non_target`` (0). Windows: 2 s
locked to each flash onset, from ``tmin`` = -0.7 s to 1.3 s (the EEGPT PhysioP300 convention, matching the 2 s
of spec §6). Flashes come every 150 ms, so windows overlap heavily (as in the literature).

Channels: the 20-channel TCP double banana (spec §8), built from the 64 monopolar electrodes (the recording's CMS
reference cancels in bipolar pairs); ``montage=average`` gives the 64-channel common average (spec §6 lists CAR).
Notch 50 Hz (recorded in the UK). Amplitude rejection is off.

Split by subject (spec §6 says only "by subject"): subjects 8, 10 and 12 are excluded as in EEGPT (the best
baseline of spec §6); of the remaining nine, 1-5 train, 6-7 val, 9 and 11 test. All three sets are options.
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


#: Characters BioSemi's annotation writer substitutes for ``_`` in later subjects.
_UNDERSCORE = {"_", "#"}


def flash_events(descriptions, onsets, *, source: str = "<recording>") -> tuple[np.ndarray, np.ndarray]:
    """Flash onsets and target (1) / non-target (0) labels from erpbci annotations.

    Parameters
    ----------
    descriptions, onsets : sequences
        The EDF+ annotations of one record.
    source : str
        File name used in error messages.

    Returns
    -------
    onsets : numpy.ndarray (n,) float, seconds
    labels : numpy.ndarray (n,) int64

    Raises
    ------
    ValueError
        No ``#Tgt`` annotation (not an erpbci record), or no flash annotations.
    """
    target = None
    for d in descriptions:
        if d.startswith("#Tgt") and len(d) > 4:
            target = d[4]
            break
    if target is None:
        raise ValueError(f"{source}: no '#Tgt<character>' annotation: not an erpbci (PhysioNet P300) record, or its "
                         "annotations were lost. Use the EDF+ files of https://physionet.org/content/erpbci/1.0.0/")
    tset = _UNDERSCORE if target in _UNDERSCORE else {target.upper()}
    ons, labs = [], []
    for d, on in zip(descriptions, onsets):
        d = d.strip()
        # flashes are the six-character codes; '#...' bookkeeping and the date some records carry are not
        if len(d) != 6 or d.startswith("#"):
            continue
        ons.append(float(on))
        labs.append(int(any(c.upper() in tset for c in d)))
    if not ons:
        raise ValueError(f"{source}: no flash annotations (six-character row/column codes such as 'ABCDEF')")
    return np.asarray(ons, float), np.asarray(labs, np.int64)


@register_recipe("p300")
class P300(Recipe):
    """PhysioNet P300 speller: target (1) vs non-target (0) flashes, 2 s windows, subject split."""

    label_names = {0: "non_target", 1: "target"}
    options = {
        "montage": ("tcp", "tcp (20-ch double banana, default) or average (CAR of the 64 channels)"),
        "window_s": (2.0, "window length in seconds"),
        "tmin": (-0.7, "window start relative to the flash onset, seconds"),
        "reject_uv": (None, "reject windows with |x| above this many µV (default: off)"),
        "notch": (50.0, "mains frequency (recorded in the UK: 50 Hz)"),
        "exclude_subjects": ("8,10,12", "subjects left out (EEGPT convention); 'none' keeps all"),
        "val_subjects": ("6,7", "comma-separated subject numbers for val"),
        "test_subjects": ("9,11", "comma-separated subject numbers for test; the others train"),
    }

    def config(self) -> PreprocessConfig:
        ref = self.opts["montage"]
        if ref not in ("tcp", "average"):
            raise ValueError(f"p300: montage must be 'tcp' or 'average', got {ref!r}")
        # EARL/EARR have no 10-05 position: CAR must drop them
        return PreprocessConfig(reference=ref, window_s=float(self.opts["window_s"]), reject_uv=self.opts["reject_uv"],
                                notch=self.opts["notch"], drop_unknown=ref == "average")

    def split(self, subject: int) -> str:
        """Split of subject number ``subject``."""
        val = _ints(self.opts["val_subjects"])
        test = _ints(self.opts["test_subjects"])
        return "val" if subject in val else "test" if subject in test else "train"

    def recordings(self, source: Path) -> list[Recording]:
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"p300: source folder {source} does not exist")
        excl = _ints(self.opts["exclude_subjects"])
        recs = []
        for f in find_files(source, r"rc\d+\.edf"):
            m = re.fullmatch(r"s(\d+)", f.parent.name, flags=re.IGNORECASE)
            if not m:
                raise ValueError(f"p300: {f} is not inside a subject folder sNN/ (erpbci layout: files/s01/rc01.edf)")
            subj = int(m.group(1))
            run = int(re.fullmatch(r"rc(\d+)\.edf", f.name, flags=re.IGNORECASE).group(1))
            if subj in excl:
                continue
            recs.append(Recording(path=f, dataset="p300", subject=f"s{subj:02d}", session=f"rc{run:02d}",
                                  recording=f"p300_s{subj:02d}_rc{run:02d}", split=self.split(subj)))
        if not recs:
            raise FileNotFoundError(f"p300: no sNN/rcNN.edf files under {source}. Download "
                                    "https://physionet.org/content/erpbci/1.0.0/ and point --source at it.")
        for split in ("train", "val", "test"):
            if not any(r.split == split for r in recs):
                warnings.warn(f"p300: no subjects of the {split!r} split under {source}; that split will be empty",
                              UserWarning, stacklevel=2)
        return recs

    def events(self, raw, rec: Recording) -> Events:
        ann = raw.annotations
        onsets, labels = flash_events(list(ann.description), np.asarray(ann.onset, float), source=str(rec.path))
        # one window per flash, starting tmin before it (event_windows drops those running off either end)
        return Events(onsets + float(self.opts["tmin"]), np.zeros(len(onsets)), labels, mode="locked")
