"""`neuript.integrations.moabb`: MOABB datasets over local recordings, and a MOABB `CrossSubjectEvaluation` of
`neuript.sklearn.NeurIPTClassifier` (beside a Riemannian reference pipeline) on the real EEGMMIDB motor-imagery
runs of subjects 1-4 — offline: every network call is refused and recorded, MNE / MOABB paths point to tmp_path."""

from __future__ import annotations

import socket
import sys
import time
import urllib.request
from pathlib import Path

import mne
import numpy as np
import pytest

SUBJECTS = [1, 2, 3, 4]
RUNS = (4, 8, 12)  # imagined left / right fist
SFREQ = 128.0  # the paradigm resamples the 160 Hz recordings to this rate
INTERVAL = (0.0, 3.0)
# the 21 sensorimotor channels (FC5..CP6, EEGMMIDB's first 21): keeps the 4 NeurIPT fits within the time budget
MOTOR = ["FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
         "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Refuse (and record) any network access; MNE's config and data folders and MOABB's in tmp_path."""
    attempts: list[str] = []

    def refuse(what):
        def _raise(*args, **kwargs):
            attempts.append(f"{what} {args[:2]!r}")
            raise OSError(f"network access attempted in an offline test: {what}")
        return _raise

    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            return refuse("socket.connect")(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    import pooch
    import requests

    monkeypatch.setattr(pooch, "retrieve", refuse("pooch.retrieve"))
    monkeypatch.setattr(requests.Session, "request", refuse("requests.Session.request"))
    for var in ("MNE_DATA", "MNE_DATASETS_EEGBCI_PATH", "MOABB_RESULTS"):
        monkeypatch.setenv(var, str(tmp_path / "mne_data"))
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(tmp_path / "home"))  # mne.get_config / set_config
    (tmp_path / "home").mkdir()
    home = [Path.home() / d for d in ("mne_data", ".mne")]
    existed = [d.exists() for d in home]
    yield attempts
    assert [d.exists() for d in home] == existed, "MNE / MOABB wrote to the home folder"


def _expected_trials(root: Path, subject: int) -> int:
    """T1 / T2 cues of the subject's imagery runs whose 3-s window fits in the recording (read from the files)."""
    n = 0
    for run in RUNS:
        path = root / f"S{subject:03d}" / f"S{subject:03d}R{run:02d}.edf"
        raw = mne.io.read_raw_edf(path, preload=False, verbose="error")
        ann = raw.annotations
        fits = ann.onset + INTERVAL[1] <= raw.times[-1]
        n += int(np.sum(np.isin(ann.description, ["T1", "T2"]) & fits))
    return n


def test_missing_moabb_is_a_one_line_install_hint(monkeypatch):
    import neuript.integrations.moabb as integ

    monkeypatch.setattr(integ, "_CLASSES", {})
    for mod in ("moabb", "moabb.datasets", "moabb.datasets.base", "moabb.datasets.utils"):
        monkeypatch.setitem(sys.modules, mod, None)  # import moabb... -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'neuript\[moabb\]'") as err:
        integ.LocalEEGMMIDB  # noqa: B018
    assert "\n" not in str(err.value)
    with pytest.raises(AttributeError):
        integ.NoSuchThing  # noqa: B018


def test_local_eegmmidb_returns_moabbs_nested_raws(shared_data, offline):
    from moabb.datasets.base import BaseDataset
    from moabb.paradigms import LeftRightImagery

    from neuript.integrations.moabb import LocalDataset, LocalEEGMMIDB

    root = shared_data / "eegmmidb"
    ds = LocalEEGMMIDB(root, subjects=[1])
    assert isinstance(ds, BaseDataset) and isinstance(ds, LocalDataset)
    assert ds.code == "Local-EEGMMIDB" and ds.subject_list == [1] and ds.paradigm == "imagery"
    assert ds.data_path(1) == [str(root / "S001" / f"S001R{r:02d}.edf") for r in RUNS]  # the local files
    assert LocalEEGMMIDB(root).subject_list == SUBJECTS  # every S### folder with an imagery run
    data = ds.get_data([1])
    assert list(data) == [1] and list(data[1]) == ["0"] and list(data[1]["0"]) == ["4", "8", "12"]
    raw = data[1]["0"]["4"]
    assert isinstance(raw, mne.io.BaseRaw) and raw.ch_names[-1] == "STIM" and len(raw.ch_names) == 65
    assert raw.ch_names[:3] == ["FC5", "FC3", "FC1"] and ds.ch_names == raw.ch_names[:-1]
    assert set(raw.annotations.description) == {"rest", "left_hand", "right_hand"}
    events = mne.find_events(raw, stim_channel="STIM", shortest_event=0, verbose="error")
    labels = dict(zip(raw.annotations.onset.round(3), raw.annotations.description))
    assert {labels[round(t, 3)] for t in raw.times[events[:, 0] - raw.first_samp]} == {"rest", "left_hand",
                                                                                     "right_hand"}
    assert LeftRightImagery().is_valid(ds)
    with pytest.raises(FileNotFoundError, match="none of the runs"):
        LocalEEGMMIDB(root, subjects=[3], runs=(5,))  # S003 has no R05
    with pytest.raises(FileNotFoundError, match="never downloads"):
        LocalDataset({1: [root / "S001" / "S001R99.edf"]}, {"left_hand": 2})
    with pytest.raises(ValueError, match="start with an integer"):
        LocalDataset({1: {"first": [root / "S001" / "S001R04.edf"]}}, {"left_hand": 2})
    # the generic class: a file list and an event map
    generic = LocalDataset({7: [root / "S002" / "S002R04.edf"]}, {"left_hand": 2, "right_hand": 3},
                           annotations={"T1": "left_hand", "T2": "right_hand"}, code="LocalDataset")
    run = generic.get_data([7])[7]["0"]["0"]
    assert set(run.annotations.description) == {"left_hand", "right_hand"}
    assert offline == []


@pytest.mark.filterwarnings("ignore:Creating a dataset without passing data or dtype")  # MOABB's h5py call
def test_cross_subject_evaluation_with_neuript(shared_data, offline, tiny_overrides, tmp_path):
    from moabb.evaluations import CrossSubjectEvaluation
    from moabb.paradigms import LeftRightImagery
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from neuript.integrations.moabb import LocalEEGMMIDB
    from neuript.sklearn import NeurIPTClassifier

    root = shared_data / "eegmmidb"
    dataset = LocalEEGMMIDB(root, subjects=SUBJECTS, runs=RUNS, interval=INTERVAL)
    assert set(MOTOR) <= set(dataset.ch_names)
    # MOABB's paradigm band-passes (8-32 Hz), picks the channels in the order given and resamples; its arrays
    # are in µV. NeurIPTClassifier then only resamples to the model's 64 Hz (preprocessing="none").
    paradigm = LeftRightImagery(resample=SFREQ, channels=MOTOR)
    clf = NeurIPTClassifier(sfreq=SFREQ, ch_names=MOTOR, unit="uV", preprocessing="none",
                            model_overrides=tiny_overrides, epochs=1, batch_size=16, random_state=0)
    pipelines = {"neuript": make_pipeline(clf),
                 "ts_lr": make_pipeline(Covariances("oas"), TangentSpace(), LogisticRegression(max_iter=1000))}
    evaluation = CrossSubjectEvaluation(paradigm=paradigm, datasets=[dataset], overwrite=True, random_state=0,
                                        n_jobs=1, hdf5_path=str(tmp_path / "results"))
    t0 = time.perf_counter()
    results = evaluation.process(pipelines)
    elapsed = time.perf_counter() - t0

    assert offline == []
    assert set(results["pipeline"]) == {"neuript", "ts_lr"}
    for name, rows in results.groupby("pipeline"):
        assert sorted(rows["subject"].astype(int)) == SUBJECTS, name  # one row per held-out subject
        assert (rows["dataset"] == "Local-EEGMMIDB").all() and len(rows) == len(SUBJECTS)
    scores = results["score"].to_numpy(dtype=float)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    trials = {s: _expected_trials(root, s) for s in SUBJECTS}
    assert all(n > 0 for n in trials.values())
    n_col = "n_samples" if "n_samples" in results else "samples"  # MOABB >= 1.5 calls it "samples"
    for _, row in results.iterrows():
        held_out = int(row["subject"])
        assert int(row[n_col]) == sum(n for s, n in trials.items() if s != held_out)
    assert list((tmp_path / "results").rglob("*.h5")) or list((tmp_path / "results").rglob("*.hdf5"))
    table = results.pivot_table(index="subject", columns="pipeline", values="score")
    print(f"\nMOABB CrossSubjectEvaluation ({elapsed:.1f} s; roc_auc per held-out subject)\n{table.round(3)}\n"
          f"mean: {table.mean().astype(float).round(3).to_dict()}")
