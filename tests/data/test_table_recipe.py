"""The generic ``table`` recipe and subject splits, on real recordings in several formats.

The recordings are short crops (30-40 s) of real EEGMAT (EDF) and EEGMMIDB (EDF+ with T0/T1/T2 annotations)
files, re-written by MNE as EDF, BDF and FIF (a FIF crop keeps its non-zero first sample, so event times must
be shifted right), plus the real EEGLAB sample ``formats/test_raw.set`` (channels ``EEG 000``.. renamed with the
``rename`` option). The manifest is written as a new user would, run through ``neuript prepare table`` (typer's
CliRunner) and through Python.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mne
import numpy as np
import pytest
from typer.testing import CliRunner

from neuript.data.prepare import prepare_store, store_info
from neuript.data.recipes import get_recipe
from neuript.data.recipes.table import label_codes, parse_event_map, read_events_file
from neuript.data.splits import subject_splits, with_subject_split
from neuript.data.store import WindowStore

CROP_S = 30.0  # seconds of each EEGMAT recording kept
MMIDB_CROP_S = 40.0
# EEGLAB sample: 17 of its 32 unnamed channels given the 10-20 names the TCP montage needs
TCP_ELECTRODES = ["Fp1", "Fp2", "F7", "F8", "F3", "F4", "T3", "T4", "T5", "T6", "C3", "C4", "Cz", "P3", "P4", "O1",
                  "O2"]
RENAME = ",".join(f"EEG {i:03d}={name}" for i, name in enumerate(TCP_ELECTRODES))


def _cli(*args):
    from neuript.cli import _register, app

    _register()
    return CliRunner().invoke(app, [str(a) for a in args])


def _crop(src: Path, tmin: float, tmax: float):
    raw = mne.io.read_raw(src, preload=True, verbose="error")
    return raw.crop(tmin, tmax, include_tmax=False)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, shared_data) -> Path:
    """A folder of third-party-looking recordings: EDF, BDF, FIF and (by absolute path) EEGLAB."""
    d = tmp_path_factory.mktemp("my_study")
    (d / "rec").mkdir()
    fmt = {0: "edf", 1: "bdf", 2: "fif", 3: "edf"}
    for k, subj in enumerate(("00", "01", "02", "03")):
        for run in ("1", "2"):
            raw = _crop(shared_data / "eegmat" / f"Subject{subj}_{run}.edf", 0, CROP_S)
            name = d / "rec" / f"p{k}_run{run}"
            if fmt[k] == "fif":
                raw.save(f"{name}_raw.fif", verbose="error")
            else:
                mne.export.export_raw(f"{name}.{fmt[k]}", raw, fmt=fmt[k], verbose="error")
    # EEGMMIDB run 4 (T1 left fist, T2 right fist): an EDF+ crop from 0 s and a FIF crop from 10 s
    mm = shared_data / "eegmmidb" / "S001" / "S001R04.edf"
    mne.export.export_raw(d / "rec" / "mm_a.edf", _crop(mm, 0, MMIDB_CROP_S), fmt="edf", verbose="error")
    _crop(mm, 10, 10 + MMIDB_CROP_S).save(d / "rec" / "mm_b_raw.fif", verbose="error")
    return d


def _files(d: Path) -> dict[str, str]:
    names = {}
    for k, ext in enumerate(("edf", "bdf", "fif", "edf")):
        for run in ("1", "2"):
            names[f"p{k}_{run}"] = f"rec/p{k}_run{run}{'_raw' if ext == 'fif' else ''}.{ext}"
    return names


def _label_manifest(d: Path, shared_data: Path, *, splits=True, sep=",", name="manifest.csv") -> Path:
    files = _files(d)
    rows = ["path,subject,session,split,label,events".replace(",", sep)]
    split_of = {0: "train", 1: "train", 2: "val", 3: "test"}
    for k in range(4):
        for run, lab in (("1", "rest"), ("2", "task")):
            rows.append(sep.join([files[f"p{k}_{run}"], f"p{k}", "1", split_of[k] if splits else "", lab, ""]))
    rows.append(sep.join([str(shared_data / "formats" / "test_raw.set"), "eeglab_subject", "", "train" if splits
                          else "", "rest", ""]))
    m = d / name
    m.write_text("\n".join(rows) + "\n")
    return m


def _window_count(duration_s: float, window_s: float) -> int:
    return int(duration_s // window_s)


# ----------------------------------------------------------------------------------------------------------
# whole-recording labels: CLI, formats, fine-tuning data
# ----------------------------------------------------------------------------------------------------------


def test_cli_table_labels_formats_and_finetune_data(recordings, shared_data, tmp_path):
    m = _label_manifest(recordings, shared_data)
    out = tmp_path / "st"
    res = _cli("prepare", "table", "--manifest", m, "--out", out, "-q", "--window-s", "5", "--set", f"rename={RENAME}",
               "--n-jobs", "2")  # workers rebuild the recipe from its options
    assert res.exit_code == 0, res.output
    st = WindowStore.open(out)
    w = st.windows
    assert st.label_names == {0: "rest", 1: "task"}  # names in sorted order
    assert set(w["montage"]) == {"tcp20"}
    per_rec = w.groupby("recording").size()
    eeglab = mne.io.read_raw_eeglab(shared_data / "formats" / "test_raw.set", verbose="error")
    for rec, n in per_rec.items():
        want = _window_count(eeglab.times[-1] + 1 / eeglab.info["sfreq"], 5.0) if "test_raw" in rec \
            else _window_count(CROP_S, 5.0)
        assert n == want, rec
    assert len(per_rec) == 9  # 8 EEGMAT crops (EDF, BDF, FIF) + the EEGLAB file
    for rec, g in w.groupby("recording"):
        assert set(g["label"]) == {0 if ("run1" in rec or "test_raw" in rec) else 1}, rec
    assert dict(w.groupby("subject")["split"].agg(lambda s: "".join(sorted(set(s))))) == {
        "p0": "train", "p1": "train", "p2": "val", "p3": "test", "eeglab_subject": "train"}
    # the split rule and subjects per split are recorded and shown
    man = json.loads((out / "manifest.json").read_text())
    assert man["splits"]["by"] == "table" and man["splits"]["subjects"]["val"] == ["p2"]
    assert "split by table" in res.output
    # the store is what fine-tuning asks for: labelled train and val, one montage, both classes
    from neuript.train.finetune import FinetuneConfig, load_finetune_data

    data = load_finetune_data(FinetuneConfig(stores=[str(out)], out=str(tmp_path / "ft")))
    assert data.n_classes == 2 and data.label_names == {0: "rest", 1: "task"} and len(data.val) == 12
    # resume: the same command skips every recording
    res = _cli("prepare", "table", "--manifest", m, "--out", out, "-q", "--window-s", "5", "--set", f"rename={RENAME}")
    assert res.exit_code == 0 and "skipped 9 already done" in res.output


def test_python_tsv_and_integer_labels(recordings, shared_data, tmp_path):
    m = recordings / "ints.tsv"
    files = _files(recordings)
    m.write_text("path\tsubject\tlabel\n" + f"{files['p0_1']}\tp0\t3\n{files['p1_2']}\tp1\t7\n")
    r = get_recipe("table", manifest=str(m), split_by="subject", val=0.5, test=0.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(r, source=m.parent, out=tmp_path / "st", progress=False)
    st = WindowStore.open(tmp_path / "st")
    assert st.label_names == {3: "3", 7: "7"}  # integer labels are kept
    assert sorted(set(st.windows["label"])) == [3, 7]
    assert sorted(set(st.windows["split"])) == ["train", "val"]
    # the source may also be the manifest file itself; a table without a val split is reported
    with pytest.warns(UserWarning, match="no recording is in the 'val' split"):
        recs = get_recipe("table").recordings(m)
    assert [r.subject for r in recs] == ["p0", "p1"] and {r.split for r in recs} == {"train"}


# ----------------------------------------------------------------------------------------------------------
# events: the recording's own annotations (event map) and events files, interval and locked windows
# ----------------------------------------------------------------------------------------------------------


def _expected_locked(path: Path, mapping: dict[str, int], window_s: float, sfreq: float = 64.0):
    """Window starts (s from the file's first sample) and labels of mapped annotations, computed from MNE."""
    raw = mne.io.read_raw(path, verbose="error")
    dur = raw.n_times / raw.info["sfreq"]
    got = []
    for on, d in zip(raw.annotations.onset - raw.first_time, raw.annotations.description):
        if d in mapping and on + window_s <= dur + 1e-9 and on >= 0:
            got.append((round(round(on * sfreq) / sfreq, 4), mapping[d]))
    return got


def test_event_map_locked_and_events_file_agree(recordings, tmp_path):
    d = recordings
    # events files written from the annotations, counted from each file's first sample (BIDS-like)
    for stem in ("mm_a.edf", "mm_b_raw.fif"):
        raw = mne.io.read_raw(d / "rec" / stem, verbose="error")
        lines = ["onset\tduration\ttrial_type"] + [
            f"{on - raw.first_time:.4f}\t{du:.4f}\t{desc}" for on, du, desc in
            zip(raw.annotations.onset, raw.annotations.duration, raw.annotations.description)]
        (d / "rec" / f"{stem.split('.')[0]}_events.tsv").write_text("\n".join(lines) + "\n")
    ann = d / "ann.csv"
    ann.write_text("path,subject,split\nrec/mm_a.edf,S1,train\nrec/mm_b_raw.fif,S2,val\n")
    evf = d / "evf.csv"
    evf.write_text("path,subject,split,events\nrec/mm_a.edf,S1,train,rec/mm_a_events.tsv\n"
                   "rec/mm_b_raw.fif,S2,val,rec/mm_b_raw_events.tsv\n")
    stores = {}
    for name, m in (("ann", ann), ("evf", evf)):
        out = tmp_path / name
        res = _cli("prepare", "table", "--manifest", m, "--out", out, "-q", "--event-map", "T1=left,T2=right")
        assert res.exit_code == 0, res.output
        stores[name] = WindowStore.open(out)
    a, b = stores["ann"].windows, stores["evf"].windows
    assert stores["ann"].label_names == {0: "left", 1: "right"} == stores["evf"].label_names
    for store_w, rec_a, rec_b in ((a, "ann_S1_mm_a", "ann_S2_mm_b_raw"), (b, "evf_S1_mm_a", "evf_S2_mm_b_raw")):
        for rec, f in ((rec_a, "mm_a.edf"), (rec_b, "mm_b_raw.fif")):
            g = store_w[store_w["recording"] == rec]
            want = _expected_locked(d / "rec" / f, {"T1": 0, "T2": 1}, 4.0)
            assert len(want) >= 3
            assert list(zip(g["start"].round(4), g["label"])) == want, rec
    np.testing.assert_array_equal(stores["ann"].read(np.arange(len(a))), stores["evf"].read(np.arange(len(b))))


def test_interval_windows_label_by_event_start(recordings, tmp_path):
    m = recordings / "interval.csv"
    m.write_text("path,subject,split\nrec/mm_a.edf,S1,train\nrec/mm_b_raw.fif,S2,val\n")
    out = tmp_path / "iv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("table", manifest=str(m), event_map="T0=rest,T1=left,T2=right", windows="interval"),
                      source=recordings, out=out, progress=False)
    st = WindowStore.open(out)
    assert st.label_names == {0: "left", 1: "rest", 2: "right"}
    codes = {"T0": 1, "T1": 0, "T2": 2}
    for rec, f in (("interval_S1_mm_a", "mm_a.edf"), ("interval_S2_mm_b_raw", "mm_b_raw.fif")):
        g = st.windows[st.windows["recording"] == rec]
        assert len(g) == _window_count(MMIDB_CROP_S, 4.0)
        np.testing.assert_allclose(g["start"], np.arange(len(g)) * 4.0)
        raw = mne.io.read_raw(recordings / "rec" / f, verbose="error")
        onsets = raw.annotations.onset - raw.first_time
        for start, lab in zip(g["start"], g["label"]):
            k = np.searchsorted(onsets, start + 1e-9, side="right") - 1
            assert codes[raw.annotations.description[k]] == lab


# ----------------------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------------------


def test_subject_splits_deterministic_disjoint_nonempty():
    subjects = [f"s{i:02d}" for i in range(20)]
    a = subject_splits(subjects, val=0.15, test=0.15, seed=0)
    assert a == subject_splits(list(reversed(subjects)) + subjects[:3], val=0.15, test=0.15, seed=0)
    counts = {s: list(a.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 14, "val": 3, "test": 3}
    assert any(subject_splits(subjects, val=0.15, test=0.15, seed=k) != a for k in (1, 2))
    # small studies: every split gets a subject while train keeps one; train first, then val, then test
    assert sorted(subject_splits(["a", "b", "c"], val=0.1, test=0.1, seed=0).values()) == ["test", "train", "val"]
    with pytest.warns(UserWarning, match=r"split\(s\) \['test'\] are empty"):
        assert sorted(subject_splits(["a", "b"], val=0.1, test=0.1, seed=0).values()) == ["train", "val"]
    with pytest.raises(ValueError, match="no subjects for training"):
        subject_splits(subjects, val=0.5, test=0.5, seed=0)


def test_cli_split_by_subject_on_table_and_on_a_builtin_recipe(recordings, shared_data, tmp_path):
    m = _label_manifest(recordings, shared_data, splits=False, name="nosplit.csv")
    m.write_text("\n".join(m.read_text().splitlines()[:-1]) + "\n")  # the 4 EEGMAT subjects only
    assign = {}
    for seed in (0, 0, 3):
        res = _cli("prepare", "table", "--manifest", m, "--out", tmp_path / f"s{seed}_{len(assign)}", "-q",
                   "--split-by", "subject", "--val", "0.25", "--test", "0.25", "--seed", seed)
        assert res.exit_code == 0, res.output
        w = WindowStore.open(tmp_path / f"s{seed}_{len(assign)}").windows
        per_subject = w.groupby("subject")["split"].agg(set)
        assert all(len(s) == 1 for s in per_subject)  # a subject is never in two splits
        assign[len(assign)] = {k: next(iter(v)) for k, v in per_subject.items()}
        assert sorted(assign[len(assign) - 1].values()) == ["test", "train", "train", "val"]
        assert "split by subject (seed" in res.output
    assert assign[0] == assign[1]
    # every recipe: eegmat with its own split replaced by a seeded subject split, recorded in the store
    src = tmp_path / "eegmat"
    src.mkdir()
    for s in ("00", "01", "02"):
        (src / f"Subject{s}_2.edf").symlink_to(shared_data / "eegmat" / f"Subject{s}_2.edf")
    out = tmp_path / "eegmat_st"
    res = _cli("prepare", "eegmat", "--source", src, "--out", out, "-q", "--split-by", "subject", "--seed", "1",
               "--val", "0.34", "--test", "0.34")
    assert res.exit_code == 0, res.output
    info = store_info(out)
    assert info["options"]["split_by"] == "subject" and info["options"]["seed"] == 1
    assert sorted(info["splits"]) == ["test", "train", "val"]
    want = subject_splits(["00", "01", "02"], val=0.34, test=0.34, seed=1)
    assert {s: [k] for k, v in info["split_rule"]["subjects"].items() for s in v} == {s: [v] for s, v in want.items()}
    # Python: the same wrapper
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        recs = with_subject_split(get_recipe("eegmat"), val=0.34, test=0.34, seed=1).recordings(src)
    assert {r.subject: r.split for r in recs} == want
    # another split on the same store is refused, not mixed in
    res = _cli("prepare", "eegmat", "--source", src, "--out", out, "-q", "--split-by", "subject", "--seed", "2",
               "--val", "0.34", "--test", "0.34")
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = _cli("prepare", "eegmat", "--source", src, "--out", out, "-q", "--seed", "2")
    assert res.exit_code == 2 and "--split-by subject" in res.output


# ----------------------------------------------------------------------------------------------------------
# bad manifests: one line, naming the file, line and column, exit code 2
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, needles", [
    ("path,subject\n", ["no rows"]),
    ("path,label\nrec/p0_run1.edf,rest\n", ["line 1", "subject"]),
    ("path,subject\nrec/p0_run1.edf,p0\nrec/missing.edf,p1\n", ["line 3", "'path'", "missing.edf", "does not exist"]),
    ("path,subject,split\n\n# a comment\nrec/p0_run1.edf,p0,training\n", ["line 4", "'split'", "training",
                                                                          "train, val, test"]),
    ("path,subject,label,events\nrec/mm_a.edf,S1,rest,rec/mm_a_events.tsv\n", ["line 2", "'label'", "'events'",
                                                                               "not both"]),
    ("path,subject,events\nrec/mm_a.edf,S1,rec/nope.tsv\n", ["line 2", "'events'", "nope.tsv"]),
    ("path,subject\nrec/p0_run1.edf,\n", ["line 2", "'subject'", "empty"]),
    ("path,subject\nrec/p0_run1.edf,p0\nrec/p0_run1.edf,p1\n", ["line 3", "already listed on line 2"]),
])
def test_bad_manifests_name_line_and_column(recordings, tmp_path, body, needles):
    m = recordings / "bad.csv"
    m.write_text(body)
    res = _cli("prepare", "table", "--manifest", m, "--out", tmp_path / "st", "-q")
    assert res.exit_code == 2, res.output
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "bad.csv" in err[0], res.output
    for n in needles:
        assert n in err[0], (n, err[0])


def test_unknown_event_map_key_and_flag_errors(recordings, tmp_path):
    m = recordings / "ann_only.csv"
    m.write_text("path,subject\nrec/mm_a.edf,S1\n")
    res = _cli("prepare", "table", "--manifest", m, "--out", tmp_path / "st", "-q", "--event-map", "T1=left,T9=x")
    assert res.exit_code == 2 and "T9" in res.output and "found: T0, T1, T2" in res.output, res.output
    res = _cli("prepare", "table", "--manifest", m, "--out", tmp_path / "st", "-q", "--event-map", "T1")
    assert res.exit_code == 2 and "NAME=VALUE" in res.output
    res = _cli("prepare", "eegmat", "--source", recordings, "--out", tmp_path / "x", "--manifest", m)
    assert res.exit_code == 2 and "not an option of recipe 'eegmat'" in res.output and "table" in res.output
    res = _cli("prepare", "table", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "--manifest" in res.output
    res = _cli("prepare", "table", "--manifest", m, "--out", tmp_path / "x", "--set", "windows=epochs")
    assert res.exit_code == 2 and "locked" in res.output


def test_helpers():
    assert parse_event_map(" T1 = left , T2=right ") == {"T1": "left", "T2": "right"}
    assert label_codes(["rest", "task", "rest"]) == ({"rest": 0, "task": 1}, {0: "rest", 1: "task"})
    assert label_codes(["2", "0"]) == ({"0": 0, "2": 2}, {0: "0", 2: "2"})
    with pytest.raises(ValueError, match="-1"):
        label_codes(["-1", "2"])


def test_events_file_errors_name_line(tmp_path):
    f = tmp_path / "ev.tsv"
    f.write_text("onset\tduration\ttrial_type\n1.0\t2.0\tleft\n2.0\tn/a\tn/a\nabc\t1\tright\n")
    with pytest.raises(ValueError, match=r"line 4, column 'onset'"):
        read_events_file(f)
    f.write_text("onset\tduration\ttrial_type\n1.0\t2.0\tleft\n2.0\tn/a\tn/a\n3\tn/a\tright\n")
    on, du, lab = read_events_file(f)
    assert on.tolist() == [1.0, 3.0] and du.tolist() == [2.0, 0.0] and lab == ["left", "right"]
    g = tmp_path / "ev.csv"
    g.write_text("onset,what\n1,x\n")
    with pytest.raises(ValueError, match="no label column"):
        read_events_file(g)
