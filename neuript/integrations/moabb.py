"""MOABB datasets over local recordings, so MOABB's paradigms and evaluations run offline on files you have.

MOABB's own dataset classes download their recordings on first use. :class:`LocalDataset` is a
:class:`moabb.datasets.base.BaseDataset` built from a list of local files and an event map instead: it never
downloads, and ``data_path`` only returns the files it was given. :class:`LocalEEGMMIDB` is one for the PhysioNet
EEG Motor Movement/Imagery Dataset in its distributed layout (``S001/S001R04.edf``), with MOABB's
``PhysionetMotorImagery`` event codes, so it can stand in for that dataset::

    from moabb.evaluations import CrossSubjectEvaluation
    from moabb.paradigms import LeftRightImagery
    from sklearn.pipeline import make_pipeline

    from neuript.integrations.moabb import LocalEEGMMIDB
    from neuript.sklearn import NeurIPTClassifier

    dataset = LocalEEGMMIDB("/data/eegmmidb", subjects=[1, 2, 3, 4])  # runs R04, R08, R12: imagined left/right fist
    paradigm = LeftRightImagery(resample=128)  # band-pass 8-32 Hz, epochs of the dataset's interval, 128 Hz
    # MOABB's arrays are in µV, already filtered: the estimator only resamples them to the model's rate
    clf = NeurIPTClassifier(sfreq=128, ch_names=dataset.ch_names, unit="uV", preprocessing="none")
    results = CrossSubjectEvaluation(paradigm=paradigm, datasets=[dataset], overwrite=True,
                                     hdf5_path="moabb_results").process({"neuript": make_pipeline(clf)})

With ``LeftRightImagery(channels=[...])`` pass the same list as ``ch_names`` (MOABB keeps that order). The classes
are made on first access (``from neuript.integrations.moabb import LocalDataset``), so importing this
module does not need ``moabb``; accessing them without it raises an ``ImportError`` with the install command.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["LocalDataset", "LocalEEGMMIDB", "MOABB_INSTALL", "EEGMMIDB_EVENTS", "EEGMMIDB_HAND_RUNS",
           "EEGMMIDB_FEET_RUNS"]

MOABB_INSTALL = "pip install 'neuript[moabb]'"

#: MOABB's ``PhysionetMotorImagery`` event codes (so results and labels match that dataset's)
EEGMMIDB_EVENTS = {"rest": 1, "left_hand": 2, "right_hand": 3, "hands": 4, "feet": 5}
#: runs whose T1 / T2 are the left / right fist (R03, R07, R11 executed; R04, R08, R12 imagined)
EEGMMIDB_HAND_RUNS = (3, 4, 7, 8, 11, 12)
#: runs whose T1 / T2 are both fists / both feet (R05, R09, R13 executed; R06, R10, R14 imagined)
EEGMMIDB_FEET_RUNS = (5, 6, 9, 10, 13, 14)

_NAME = re.compile(r"[0-9]+(|[a-zA-Z]+[a-zA-Z0-9]*)")  # MOABB's session / run name rule
_CLASSES: dict[str, type] = {}


def _moabb():
    """``moabb.datasets.base.BaseDataset`` and ``moabb.datasets.utils.stim_channels_with_selected_ids``, or an
    ImportError that says how to install MOABB."""
    try:
        from moabb.datasets.base import BaseDataset
        from moabb.datasets.utils import stim_channels_with_selected_ids
    except ImportError as err:
        raise ImportError(f"MOABB datasets need the moabb package: {MOABB_INSTALL} ({err})") from None
    return BaseDataset, stim_channels_with_selected_ids


def __getattr__(name: str):
    if name in ("LocalDataset", "LocalEEGMMIDB"):
        if not _CLASSES:
            _CLASSES.update(_build())
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"LocalDataset", "LocalEEGMMIDB"})


@contextmanager
def _quiet(logger: str):
    """Silence ``logger`` below ERROR (MOABB logs a warning when a class name does not abbreviate its code)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _canonical_names(raw) -> None:
    """Rename channels to neuript's canonical electrode names (``Fc5.`` → ``FC5``, ``EEG T3`` → ``T7``) where
    they parse and stay unique."""
    from neuript.electrodes import parse_channel

    new = {}
    for name in raw.ch_names:
        canon = parse_channel(name).canonical
        if canon and canon != name:
            new[name] = canon
    names = [new.get(n, n) for n in raw.ch_names]
    if len(set(names)) == len(names):
        raw.rename_channels(new)


def _normalise_files(files: Mapping[Any, Any]) -> dict[Any, dict[str, dict[str, Path]]]:
    """``{subject: paths | {session: paths | {run: path}}}`` → ``{subject: {session: {run: Path}}}`` with MOABB's
    names (a sequence is numbered ``"0"``, ``"1"``, ... in order)."""

    def named(obj, what: str) -> dict[str, Any]:
        if isinstance(obj, (str, os.PathLike)):
            obj = [obj]
        items = obj.items() if isinstance(obj, Mapping) else enumerate(obj)
        out = {}
        for key, value in items:
            key = str(key)
            if not _NAME.fullmatch(key):
                raise ValueError(f"{what} name {key!r}: MOABB wants names that start with an integer (the "
                                 "recording order), optionally followed by letters and digits, e.g. '0', '1train'")
            out[key] = value
        return out

    norm: dict[Any, dict[str, dict[str, Path]]] = {}
    for subject, sessions in files.items():
        if not isinstance(subject, (int, str)):
            raise ValueError(f"subject {subject!r}: MOABB wants integer (or string) subject ids")
        if not isinstance(sessions, Mapping):
            sessions = {"0": sessions}
        norm[subject] = {ses: {run: Path(p) for run, p in named(runs, "run").items()}
                         for ses, runs in named(sessions, "session").items()}
    return norm


def _build() -> dict[str, type]:
    BaseDataset, stim_channels_with_selected_ids = _moabb()
    import mne

    class LocalDataset(BaseDataset):
        """A MOABB dataset over local recordings: no download, ever.

        Parameters
        ----------
        files : dict
            ``{subject: paths}``, ``{subject: {session: paths}}`` or ``{subject: {session: {run: path}}}``;
            subjects are integers, sessions and runs are MOABB names (a string starting with an integer, e.g.
            ``"0"``, ``"1train"``); a list of paths is numbered ``"0"``, ``"1"``, ... in order.
        events : dict of str to int
            MOABB event names and their codes, e.g. ``{"left_hand": 2, "right_hand": 3}`` (the names a paradigm
            selects: ``left_hand``, ``right_hand``, ``feet``, ``rest``, ... for motor imagery).
        annotations : dict of str to str, optional
            Annotation description in the files → event name (e.g. ``{"T1": "left_hand"}``); default: the files'
            annotations already carry the event names. Annotations of other descriptions are dropped.
        code : str
            MOABB's dataset code (CamelCase, dashes allowed): names the dataset in results and caches.
        interval : (float, float)
            The trial window in seconds from each event onset (what a paradigm epochs by default).
        paradigm : str
            ``"imagery"``, ``"p300"``, ``"ssvep"``, ... (paradigms only accept datasets of their kind).
        reader : callable, optional
            ``path → mne.io.Raw``; default :func:`mne.io.read_raw` (EDF, BDF, FIF, EEGLAB, BrainVision, ...).
        canonical_names : bool
            Rename channels to canonical electrode names (``Fc5.`` → ``FC5``) where they parse.
        montage : str or DigMontage, optional
            A montage to set (e.g. ``"standard_1005"``; channels it lacks are left without a position).
        doi : str, optional
        unit_factor : float
            What MOABB multiplies the volts by in its arrays (1e6: µV, MOABB's default; pass ``unit="uV"`` to
            :class:`~neuript.sklearn.NeurIPTClassifier`).

        Each run is returned as MOABB's datasets return it: annotations renamed to the event names (only those of
        ``events`` kept) and a ``STIM`` channel with their codes.
        """

        def __init__(self, files: Mapping[Any, Any], events: Mapping[str, int], *,
                     annotations: Mapping[str, str] | None = None, code: str = "LocalDataset",
                     interval: Sequence[float] = (0.0, 3.0), paradigm: str = "imagery",
                     reader: Callable[[Path], Any] | None = None, canonical_names: bool = True,
                     montage: Any = None, doi: str | None = None, unit_factor: float = 1e6,
                     sessions_per_subject: int | None = None) -> None:
            self.files = _normalise_files(files)
            if not self.files:
                raise ValueError("files is empty: give at least one subject's recordings")
            missing = [str(p) for ses in self.files.values() for runs in ses.values() for p in runs.values()
                       if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"{len(missing)} recording(s) not found (a LocalDataset never downloads): "
                                        f"{missing[:3]}{' ...' if len(missing) > 3 else ''}")
            self.annotations = dict(annotations) if annotations is not None else None
            self.reader = reader
            self.canonical_names = canonical_names
            self.montage = montage
            n_sessions = sessions_per_subject or min(len(s) for s in self.files.values())
            with _quiet("moabb.datasets.base"):
                super().__init__(subjects=list(self.files), sessions_per_subject=n_sessions, events=dict(events),
                                 code=code, interval=list(interval), paradigm=paradigm, doi=doi,
                                 unit_factor=unit_factor)

        # -------------------------------------------------------------- hooks
        def annotation_map(self, subject, session: str, run: str) -> dict[str, str] | None:
            """Description → event name for one run (default: ``annotations`` for every run)."""
            return self.annotations

        def read_raw(self, path: Path):
            """One recording as a preloaded ``mne.io.Raw`` (channels renamed, montage set)."""
            if self.reader is not None:
                raw = self.reader(path)
            else:
                raw = mne.io.read_raw(path, preload=True, verbose="error")
            raw.load_data(verbose="error")
            if self.canonical_names:
                _canonical_names(raw)
            if self.montage is not None:
                raw.set_montage(self.montage, on_missing="ignore", verbose="error")
            return raw

        @property
        def ch_names(self) -> list[str]:
            """The EEG channels of the first recording as MOABB's paradigms return them (``channels=None``), e.g.
            for ``NeurIPTClassifier(ch_names=...)``. Reads one file header."""
            first = next(iter(next(iter(self.files.values())).values()))
            path = next(iter(first.values()))
            if self.reader is not None:
                raw = self.reader(path)
            else:
                raw = mne.io.read_raw(path, preload=False, verbose="error")
            if self.canonical_names:
                _canonical_names(raw)
            return [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, stim=False)]

        # -------------------------------------------------------------- BaseDataset
        def _get_single_subject_data(self, subject):
            out: dict[str, dict[str, Any]] = {}
            for session, runs in self.files[subject].items():
                for run, path in runs.items():
                    raw = self.read_raw(path)
                    mapping = self.annotation_map(subject, session, run)
                    if mapping:
                        desc = [mapping.get(d, d) for d in raw.annotations.description]
                        raw.set_annotations(mne.Annotations(raw.annotations.onset, raw.annotations.duration, desc,
                                                            orig_time=raw.annotations.orig_time))
                    if not set(raw.annotations.description) & set(self.event_id):
                        warnings.warn(f"{path}: none of the events {sorted(self.event_id)} in its annotations "
                                      f"{sorted(set(raw.annotations.description))}; run left out", UserWarning,
                                      stacklevel=2)
                        continue
                    with mne.utils.use_log_level("error"):
                        out.setdefault(session, {})[run] = stim_channels_with_selected_ids(
                            raw, desired_event_id=dict(self.event_id))
            return out

        def data_path(self, subject, path=None, force_update=False, update_path=None, verbose=None):
            """The subject's local files (nothing is downloaded; ``path`` and the rest are ignored)."""
            if subject not in self.files:
                raise ValueError(f"Invalid subject {subject!r}: this dataset has {list(self.files)}")
            return [str(p) for runs in self.files[subject].values() for p in runs.values()]

        def download(self, *args, **kwargs):
            """Nothing to download: the recordings are local."""
            return None

    class LocalEEGMMIDB(LocalDataset):
        """The PhysioNet EEG Motor Movement/Imagery Dataset (EEGMMIDB, Schalk et al. 2004) from a local folder.

        ``root`` holds ``S001/S001R04.edf`` ... (PhysioNet's layout, also MNE's ``eegbci`` download folder
        ``MNE-eegbci-data/files/eegmmidb/1.0.0``). Event codes are those of MOABB's ``PhysionetMotorImagery``
        (:data:`EEGMMIDB_EVENTS`): in the hand runs T1 / T2 are ``left_hand`` / ``right_hand``, in the feet runs
        ``hands`` / ``feet``; T0 is ``rest``. One session ``"0"`` per subject, runs named by their number.

        Parameters
        ----------
        root : path
            The dataset folder.
        subjects : list of int, optional
            Default: every ``S###`` folder under ``root`` that holds one of ``runs``.
        runs : sequence of int
            Default (4, 8, 12): imagined left / right fist, as ``PhysionetMotorImagery`` with
            ``imagined=True``'s hand runs. Runs missing from a subject's folder are skipped.
        interval : (float, float)
            Trial window (default (0, 3) s as in MOABB's ``PhysionetMotorImagery``; the cues last ~4.1 s).
        """

        def __init__(self, root: str | os.PathLike, subjects: Sequence[int] | None = None,
                     runs: Sequence[int] = (4, 8, 12), *, interval: Sequence[float] = (0.0, 3.0),
                     **kwargs) -> None:
            root = Path(root)
            if not root.is_dir():
                raise FileNotFoundError(f"EEGMMIDB folder {root} not found")
            bad = [r for r in runs if r not in EEGMMIDB_HAND_RUNS + EEGMMIDB_FEET_RUNS]
            if bad:
                raise ValueError(f"runs {bad}: EEGMMIDB's task runs are 3-14 (1 and 2 are baselines without "
                                 "events)")
            explicit = subjects is not None
            if not explicit:
                subjects = sorted(int(d.name[1:]) for d in root.glob("S[0-9][0-9][0-9]") if d.is_dir())
            files: dict[int, dict[str, dict[str, Path]]] = {}
            for s in subjects:
                found = {str(r): root / f"S{s:03d}" / f"S{s:03d}R{r:02d}.edf" for r in runs}
                found = {k: p for k, p in found.items() if p.is_file()}
                if found:
                    files[int(s)] = {"0": found}
                elif explicit:
                    raise FileNotFoundError(f"subject {s}: none of the runs {list(runs)} in {root / f'S{s:03d}'}")
            if not files:
                raise FileNotFoundError(f"no EEGMMIDB recordings of runs {list(runs)} under {root}")
            self.root, self.runs = root, tuple(int(r) for r in runs)
            kwargs.setdefault("montage", "standard_1005")
            super().__init__(files, dict(EEGMMIDB_EVENTS), code="Local-EEGMMIDB", interval=interval,
                             paradigm="imagery", doi="10.1109/TBME.2004.827072", **kwargs)

        def annotation_map(self, subject, session, run):
            if int(run) in EEGMMIDB_FEET_RUNS:
                return {"T0": "rest", "T1": "hands", "T2": "feet"}
            return {"T0": "rest", "T1": "left_hand", "T2": "right_hand"}

    classes = {"LocalDataset": LocalDataset, "LocalEEGMMIDB": LocalEEGMMIDB}
    for name, cls in classes.items():  # importable (and picklable) as neuript.integrations.moabb.<name>
        cls.__module__, cls.__qualname__ = __name__, name
    return classes
