"""The ``bids`` recipe on a BIDS tree written from real EEGMMIDB recordings.

Four subjects' run 4 (T1 left fist, T2 right fist), cropped to 40 s and written as BIDS EEG: EDF data files
*without* annotations (so the labels can only come from ``*_events.tsv``), ``*_channels.tsv`` marking one
channel bad and one EOG, ``participants.tsv`` with a ``group`` column, one subject in a ``ses-1`` folder, and a
second task (``rest``, from run 1) that must not be picked up by ``--task motor``.
"""

from __future__ import annotations

import json
from pathlib import Path

import mne
import pytest
from typer.testing import CliRunner

from neuript.data.prepare import prepare_store
from neuript.data.recipes import get_recipe
from neuript.data.recipes.bids import bids_entities
from neuript.data.store import WindowStore

CROP_S = 40.0
SUBJECTS = ("001", "002", "003", "004")
GROUPS = {"001": "patient", "002": "control", "003": "patient", "004": "control"}
BAD, EOG = "Fc5.", "Fc6."


def _cli(*args):
    from neuript.cli import _register, app

    _register()
    return CliRunner().invoke(app, [str(a) for a in args])


def _write(raw, eeg_dir: Path, base: str, *, events: bool) -> None:
    eeg_dir.mkdir(parents=True, exist_ok=True)
    ann = raw.annotations.copy()
    raw.set_annotations(None)  # the labels must come from events.tsv
    mne.export.export_raw(eeg_dir / f"{base}_eeg.edf", raw, fmt="edf", verbose="error")
    if events:
        lines = ["onset\tduration\ttrial_type\tvalue"] + [
            f"{on:.4f}\t{du:.4f}\t{d}\t{i}" for i, (on, du, d) in enumerate(zip(ann.onset, ann.duration,
                                                                               ann.description))]
        lines.append("39.0000\t0.5\tn/a\t99")  # BIDS "n/a": not an event of any class
        (eeg_dir / f"{base}_events.tsv").write_text("\n".join(lines) + "\n")
    rows = ["name\ttype\tunits\tstatus"] + [
        f"{c}\t{'EOG' if c == EOG else 'EEG'}\tuV\t{'bad' if c == BAD else 'good'}" for c in raw.ch_names]
    (eeg_dir / f"{base}_channels.tsv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory, shared_data) -> Path:
    root = tmp_path_factory.mktemp("bids") / "mmidb"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "MMIDB subset", "BIDSVersion": "1.9.0"}))
    (root / "participants.tsv").write_text("participant_id\tgroup\n" + "".join(
        f"sub-{s}\t{GROUPS[s]}\n" for s in SUBJECTS))
    onsets = {}
    for s in SUBJECTS:
        raw = mne.io.read_raw_edf(shared_data / "eegmmidb" / f"S{s}" / f"S{s}R04.edf", preload=True,
                                  verbose="error").crop(0, CROP_S, include_tmax=False)
        onsets[s] = (raw.annotations.onset.copy(), list(raw.annotations.description))
        ses = "ses-1/" if s == "004" else ""
        base = f"sub-{s}_{'ses-1_' if ses else ''}task-motor_run-04"
        _write(raw, root / f"sub-{s}" / ses / "eeg", base, events=True)
    rest = mne.io.read_raw_edf(shared_data / "eegmmidb" / "S001" / "S001R01.edf", preload=True,
                               verbose="error").crop(0, 10)
    _write(rest, root / "sub-001" / "eeg", "sub-001_task-rest", events=False)
    (root / "onsets.json").write_text(json.dumps({s: [o.tolist(), d] for s, (o, d) in onsets.items()}))
    return root


def test_entities():
    assert bids_entities("sub-01_ses-2_task-motor_run-3_eeg.edf") == {"sub": "01", "ses": "2", "task": "motor",
                                                                      "run": "3"}
    assert bids_entities("sub-01_task-x_eeg.eeg") is None  # BrainVision binary, read through its .vhdr
    assert bids_entities("sub-01_task-x_events.tsv") is None and bids_entities("notbids_eeg.edf") is None


def test_cli_bids_events_channels_participants_and_split(bids_root, tmp_path):
    out = tmp_path / "st"
    res = _cli("prepare", "bids", "--root", bids_root, "--task", "motor", "--out", out, "-q", "--event-map",
               "T1=left,T2=right", "--montage", "average", "--val", "0.25", "--test", "0.25", "--seed", "0")
    assert res.exit_code == 0, res.output
    st = WindowStore.open(out)
    w = st.windows
    assert st.label_names == {0: "left", 1: "right"}
    assert sorted(w["recording"].unique()) == ["sub-001_task-motor_run-04", "sub-002_task-motor_run-04",
                                               "sub-003_task-motor_run-04", "sub-004_ses-1_task-motor_run-04"]
    assert set(w.loc[w["subject"] == "sub-004", "session"]) == {"1"}
    onsets = json.loads((bids_root / "onsets.json").read_text())
    for s in SUBJECTS:
        g = w[w["subject"] == f"sub-{s}"]
        on, desc = onsets[s]
        want = [(round(round(o * 64) / 64, 4), {"T1": 0, "T2": 1}[d]) for o, d in zip(on, desc)
                if d in ("T1", "T2") and o + 4.0 <= CROP_S]
        assert len(want) >= 3 and list(zip(g["start"].round(4), g["label"])) == want, s
        chs, _ = st.recording_channels(g["recording"].iloc[0])
        assert len(chs) == 62 and "FC5" not in chs and "FC6" not in chs and "FC3" in chs  # bad and EOG dropped
    # split by subject by default (BIDS has none), deterministic, recorded
    per = w.groupby("subject")["split"].agg(set)
    assert all(len(v) == 1 for v in per) and sorted(next(iter(v)) for v in per) == ["test", "train", "train", "val"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["splits"]["by"] == "subject" and man["splits"]["seed"] == 0
    out2 = tmp_path / "st2"
    res = _cli("prepare", "bids", "--root", bids_root, "--task", "motor", "--out", out2, "-q", "--event-map",
               "T1=left,T2=right", "--montage", "average", "--val", "0.25", "--test", "0.25", "--seed", "0")
    assert res.exit_code == 0
    assert json.loads((out2 / "manifest.json").read_text())["splits"] == man["splits"]


def test_python_participant_labels_bad_channels_kept_no_split(bids_root, tmp_path):
    r = get_recipe("bids", task="motor", participant_label="group", split_by="none", split="pretrain",
                   montage="average", bad_channels="keep", subjects="001,002")
    prepare_store(r, source=bids_root, out=tmp_path / "st", progress=False)
    st = WindowStore.open(tmp_path / "st")
    w = st.windows
    assert st.label_names == {0: "control", 1: "patient"} and set(w["split"]) == {"pretrain"}
    assert set(w.loc[w["subject"] == "sub-001", "label"]) == {1}  # patient
    assert set(w.loc[w["subject"] == "sub-002", "label"]) == {0}  # control
    assert (w.groupby("recording").size() == int(CROP_S // 4)).all()  # whole recordings, sliding windows
    chs, _ = st.recording_channels(w["recording"].iloc[0])
    assert len(chs) == 63 and "FC5" in chs and "FC6" not in chs
    # without an event map the trial_type strings are the labels (n/a rows skipped)
    recs = get_recipe("bids", task="motor").recordings(bids_root)
    assert get_recipe("bids").label_names == {}  # per instance, not shared
    r2 = get_recipe("bids", task="motor", event_column="trial_type")
    r2.recordings(bids_root)
    assert r2.label_names == {0: "T0", 1: "T1", 2: "T2"} and len(recs) == 4


def test_bids_errors(bids_root, tmp_path):
    res = _cli("prepare", "bids", "--root", bids_root, "--out", tmp_path / "a", "-q")
    assert res.exit_code == 2 and "--task" in res.output and "motor, rest" in res.output, res.output
    res = _cli("prepare", "bids", "--root", bids_root, "--task", "nback", "--out", tmp_path / "b", "-q")
    assert res.exit_code == 2 and "nback" in res.output and "motor, rest" in res.output
    res = _cli("prepare", "bids", "--root", tmp_path, "--task", "motor", "--out", tmp_path / "c", "-q")
    assert res.exit_code == 2 and "no EEG recordings" in res.output
    res = _cli("prepare", "bids", "--root", bids_root, "--task", "motor", "--out", tmp_path / "d", "-q",
               "--event-map", "T1=left,TX=right")
    assert res.exit_code == 2 and "TX" in res.output and "T0, T1, T2" in res.output
    res = _cli("prepare", "bids", "--root", bids_root, "--task", "motor", "--out", tmp_path / "e", "-q",
               "--set", "participant_label=age")
    assert res.exit_code == 2 and "'age'" in res.output and "participants.tsv" in res.output
