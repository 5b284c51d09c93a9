"""The paper's benchmark recipes (Mumtaz2016, PhysioNet P300, SEED-V, BCIC-IV-2a, TUAB, TUEV) on small files written
in each dataset's documented layout: file names and folders, channel names, annotations / event / label files.

No real file of these datasets is on the development machines. The signal content is real EEG (a few seconds of
EEGMAT Subject00, resampled to each dataset's rate and assigned to its electrodes by name), so filtering, montage
and windowing run on realistic data. Formats MNE cannot write (GDF, Neuroscan CNT) are replaced by EDF stand-ins
or in-memory recordings with the same channel names and events; each test says which.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import mne
import numpy as np
import pytest
from scipy.io import savemat

from neuript.data.prepare import PrepareError, prepare_store
from neuript.data.preprocess import preprocess_raw
from neuript.data.recipes import Recording, get_recipe, list_recipes
from neuript.data.recipes import bcic2a as B
from neuript.data.recipes import seedv as S
from neuript.data.recipes.p300 import flash_events
from neuript.data.recipes.tuh import read_rec, train_val_split
from neuript.data.store import WindowStore
from neuript.electrodes import TCP_BIPOLAR, parse_channel

DATE = datetime(2016, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def real_eeg(eegmat_dir):
    """40 s of EEGMAT Subject00 rest: electrode → signal in volts at 500 Hz (19 electrodes)."""
    raw = mne.io.read_raw_edf(eegmat_dir / "Subject00_1.edf", preload=True, verbose="error")
    raw.crop(10, 50)
    out = {}
    for name, sig in zip(raw.ch_names, raw.get_data()):
        spec = parse_channel(name)
        if spec.kind == "eeg" and spec.known:
            out[spec.electrodes[0]] = sig
    assert len(out) == 19
    return out


def _signals(real, names, sfreq, seconds):
    """(len(names), n) volts: each name's electrode from ``real`` when recorded there, else a recorded channel
    (chosen by position in the list) so every channel carries real EEG."""
    from fractions import Fraction

    keys = sorted(real)
    base = np.stack([real[k] for k in keys])
    ratio = Fraction(sfreq / 500.0).limit_denominator(1000)
    base = mne.filter.resample(base, up=ratio.numerator, down=ratio.denominator, method="polyphase", verbose="error")
    n = int(round(seconds * sfreq))
    reps = int(np.ceil(n / base.shape[1]))
    base = np.tile(base, (1, reps))[:, :n]  # 40 s of real signal repeated as needed
    rows = []
    for k, name in enumerate(names):
        spec = parse_channel(name)
        e = spec.electrodes[0] if spec.kind == "eeg" and spec.known else None
        rows.append(base[keys.index(e)] if e in keys else base[k % len(keys)])
    return np.stack(rows)


def _write_edf(path, real, names, sfreq, seconds, annotations=()):
    raw = mne.io.RawArray(_signals(real, names, sfreq, seconds), mne.create_info(list(names), sfreq, "eeg"),
                          verbose="error")
    raw.set_meas_date(DATE)
    if annotations:
        on, du, de = zip(*annotations)
        raw.set_annotations(mne.Annotations(list(on), list(du), list(de), orig_time=DATE))
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, raw, fmt="edf", verbose="error")
    return path


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*a, **k)


def test_benchmark_recipes_registered():
    assert {"mumtaz", "p300", "seedv", "bcic2a", "tuab", "tuev"} <= set(list_recipes())
    assert get_recipe("tuab", window_s="12").config().window_s == 12.0
    assert get_recipe("tuev").config().n_times == 5 * 64 and get_recipe("seedv").config().n_times == 64
    assert get_recipe("bcic2a").config().bipolar_pairs == B.PAIRS and len(B.PAIRS) == 16


# ---------------------------------------------------------------------------------------------------- Mumtaz2016
MUMTAZ_CH = [f"EEG {e}-LE" for e in ("Fp1", "F3", "C3", "P3", "O1", "F7", "T3", "T5", "Fz", "Fp2", "F4", "C4", "P4",
                                     "O2", "F8", "T4", "T6", "Cz", "Pz")] + ["EEG A2-A1", "EEG 23A-23R", "EEG 24A-24R"]


def test_mumtaz_split_counts(tmp_path):
    for s in range(1, 35):
        for c in ("EO", "EC", "TASK"):
            (tmp_path / f"MDD S{s} {c}.edf").touch()
    for s in range(1, 29):
        for c in ("EO", "EC"):
            (tmp_path / f"H S{s} {c}.edf").touch()
    recs = get_recipe("mumtaz").recordings(tmp_path)
    assert {r.session for r in recs} == {"EO", "EC"} and len(recs) == 2 * (34 + 28)
    subj = {(r.subject, r.split) for r in recs}
    count = {(g, s): sum(1 for sub, sp in subj if sub.startswith(g) and sp == s)
             for g in ("MDD", "H") for s in ("train", "val", "test")}
    assert [count[("MDD", s)] for s in ("train", "val", "test")] == [24, 5, 5]
    assert [count[("H", s)] for s in ("train", "val", "test")] == [19, 4, 5]
    # by number order: MDD 1-24 train, 25-29 val, 30-34 test
    sp = {r.subject: r.split for r in recs}
    assert sp["MDD24"] == "train" and sp["MDD25"] == "val" and sp["MDD34"] == "test" and sp["H20"] == "val"
    assert {r.label for r in recs if r.subject.startswith("MDD")} == {1}
    assert {r.label for r in recs if r.subject.startswith("H")} == {0}
    with pytest.warns(UserWarning, match="no H files"):
        task = get_recipe("mumtaz", conditions="TASK").recordings(tmp_path)
    assert {r.session for r in task} == {"TASK"} and len(task) == 34  # healthy TASK files absent here


def test_mumtaz_prepare(tmp_path, real_eeg):
    src = tmp_path / "src"
    _write_edf(src / "H S1 EO.edf", real_eeg, MUMTAZ_CH, 256.0, 12.0)
    _write_edf(src / "MDD S3 EC.edf", real_eeg, MUMTAZ_CH, 256.0, 16.0)
    out = tmp_path / "st"
    with pytest.warns(UserWarning, match="subjects"):
        prepare_store(get_recipe("mumtaz"), source=src, out=out, progress=False)
    st = WindowStore.open(out)
    w = st.windows
    assert st.n_times == 5 * 64
    assert st.recording_channels("mumtaz_H_S01_EO")[0] == list(TCP_BIPOLAR)
    per = w.groupby("recording")["label"].agg(["count", "min", "max"])
    assert per.loc["mumtaz_H_S01_EO"].tolist() == [2, 0, 0]      # 12 s -> two 5 s windows, healthy
    assert per.loc["mumtaz_MDD_S03_EC"].tolist() == [3, 1, 1]    # 16 s -> three, MDD
    # CAR variant: 19 monopolar channels (the unnamed 23A/24A channels dropped)
    out2 = tmp_path / "car"
    _quiet(prepare_store, get_recipe("mumtaz", montage="average"), source=src, out=out2, progress=False)
    assert len(WindowStore.open(out2).recording_channels("mumtaz_H_S01_EO")[0]) == 19


def test_mumtaz_missing_channel_names_the_file(tmp_path, real_eeg):
    src = tmp_path / "src"
    _write_edf(src / "H S2 EO.edf", real_eeg, [c for c in MUMTAZ_CH if "Fp1" not in c], 256.0, 6.0)
    with pytest.raises(PrepareError, match=r"H S2 EO\.edf.*Fp1"):
        _quiet(prepare_store, get_recipe("mumtaz"), source=src, out=tmp_path / "st", progress=False)


# ---------------------------------------------------------------------------------------------------- P300
P300_CH = ["Fp1", "AF7", "AF3", "F1", "F3", "F5", "F7", "FT7", "FC5", "FC3", "FC1", "C1", "C3", "C5", "T7", "TP7",
           "CP5", "CP3", "CP1", "P1", "P3", "P5", "P7", "P9", "PO7", "PO3", "O1", "Iz", "Oz", "POz", "Pz", "CPz", "Fpz",
           "Fp2", "AF8", "AF4", "AFz", "Fz", "F2", "F4", "F6", "F8", "FT8", "FC6", "FC4", "FC2", "FCz", "Cz", "C2",
           "C4", "C6", "T8", "TP8", "CP6", "CP4", "CP2", "P2", "P4", "P6", "P8", "P10", "PO8", "PO4", "O2",
           "EARL", "EARR", "VEOGL", "VEOGR", "HEOGL", "HEOGR"]
ROWCOL = ["ABCDEF", "GHIJKL", "MNOPQR", "STUVWX", "YZ1234", "56789_",
          "AGMSY5", "BHNTZ6", "CIOU17", "DJPV28", "EKQW39", "FLRX4_"]


def _p300_annotations(target="N", n=40, t0=1.0):
    ann = [(0.2, 0.0, f"#Tgt{target}_0203"), (0.5, 0.0, "#start")]
    flashes = [(t0 + 0.15 * k, 0.1, ROWCOL[k % 12]) for k in range(n)]
    return ann + flashes + [(t0 + 0.15 * n + 0.5, 0.0, "#end"), (t0 + 0.15 * n + 0.6, 0.0, "#counted20of20")], flashes


def test_p300_flash_labels():
    ann, flashes = _p300_annotations("N")
    on, lab = flash_events([a[2] for a in ann], [a[0] for a in ann])
    np.testing.assert_allclose(on, [f[0] for f in flashes])
    assert lab.tolist() == [int("N" in f[2]) for f in flashes] and lab.sum() == 7  # MNOPQR x4, BHNTZ6 x3
    # '_' may be written '#' in later subjects
    on, lab = flash_events(["#Tgt__x", "56789#", "ABCDEF", "FLRX4#"], [1, 2, 3, 4])
    assert lab.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="rec9.edf.*#Tgt"):
        flash_events(["ABCDEF"], [1.0], source="rec9.edf")


def test_p300_subject_split(tmp_path):
    for s in range(1, 13):
        (tmp_path / f"s{s:02d}").mkdir()
        (tmp_path / f"s{s:02d}" / "rc01.edf").touch()
    recs = get_recipe("p300").recordings(tmp_path)
    sp = {int(r.subject[1:]): r.split for r in recs}
    assert sorted(sp) == [1, 2, 3, 4, 5, 6, 7, 9, 11]
    assert [s for s in sp if sp[s] == "val"] == [6, 7] and [s for s in sp if sp[s] == "test"] == [9, 11]
    assert len(get_recipe("p300", exclude_subjects="none").recordings(tmp_path)) == 12


def test_p300_prepare(tmp_path, real_eeg):
    ann, flashes = _p300_annotations("N", n=40)
    src = tmp_path / "files"
    _write_edf(src / "s01" / "rc01.edf", real_eeg, P300_CH, 256.0, 10.0, ann)
    out = tmp_path / "st"
    _quiet(prepare_store, get_recipe("p300"), source=src, out=out, progress=False)
    st = WindowStore.open(out)
    w = st.windows.sort_values("start")
    assert st.n_times == 128 and st.recording_channels("p300_s01_rc01")[0] == list(TCP_BIPOLAR)
    assert set(w["split"]) == {"train"} and set(w["session"]) == {"rc01"}
    # one 2 s window per flash, from 0.7 s before it (all 40 fit in the 10 s record)
    assert len(w) == 40
    np.testing.assert_allclose(w["start"].to_numpy(), np.round((np.array([f[0] for f in flashes]) - 0.7) * 64) / 64)
    assert w["label"].tolist() == [int("N" in f[2]) for f in flashes]


# ---------------------------------------------------------------------------------------------------- SEED-V
SEED_CH = ["FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8", "FT7", "FC5", "FC3",
           "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8", "TP7", "CP5",
           "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "PO7",
           "PO5", "PO3", "POZ", "PO4", "PO6", "PO8", "CB1", "O1", "OZ", "O2", "CB2", "M1", "M2", "VEO", "HEO"]


def test_seedv_trials_and_split(tmp_path):
    for sess in (1, 2, 3):
        ev = S.session_events(sess)
        assert len(ev.onsets) == 15 and (ev.durations > 0).all() and sorted(set(ev.labels.tolist())) == [0, 1, 2, 3, 4]
        assert np.bincount(ev.labels).tolist() == [3, 3, 3, 3, 3]  # three clips per emotion and session
    assert S.session_events(1).onsets[0] == 30 and S.session_events(3).durations[-1] == 3066 - 2888
    for s in range(1, 17):
        for sess in (1, 2, 3):
            (tmp_path / f"{s}_{sess}_20180804.cnt").touch()
    recs = get_recipe("seedv").recordings(tmp_path)
    sp = {int(r.subject): r.split for r in recs}
    assert sorted(s for s in sp if sp[s] == "train") == list(range(1, 11))
    assert sorted(s for s in sp if sp[s] == "test") == list(range(11, 16)) and [s for s in sp if sp[s] == "val"] == [16]
    tr = get_recipe("seedv", split="trials").recordings(tmp_path)
    assert len(tr) == 3 * len(recs) and {r.split for r in tr} == {"train", "val", "test"}
    ev = get_recipe("seedv", split="trials").events(_FakeRaw(4000), tr[1])
    assert tr[1].split == "val" and (ev.labels[:5] == -1).all() and (ev.labels[5:10] >= 0).all()
    assert (ev.labels[10:] == -1).all()
    with pytest.warns(UserWarning, match="ends at 110 s"):
        get_recipe("seedv").events(_FakeRaw(110), recs[0])


class _FakeRaw:
    """Just the length of a recording, for events()."""

    def __init__(self, seconds):
        self.n_times, self.info = int(seconds * 100), {"sfreq": 100.0}


def test_seedv_prepare_on_edf_standin(tmp_path, real_eeg):
    # Neuroscan CNT cannot be written: an EDF with the CNT's channel names and the distributed file naming
    src = tmp_path / "EEG_raw"
    _write_edf(src / "1_1_20180804.edf", real_eeg, SEED_CH, 128.0, 110.0)
    out = tmp_path / "st"
    with pytest.warns(UserWarning, match="only session"):
        prepare_store(get_recipe("seedv", extension="edf"), source=src, out=out, progress=False)
    st = WindowStore.open(out)
    w = st.windows
    assert st.recording_channels("seedv_01_1")[0] == S.CHANNELS and st.n_times == 64
    # clip 1 of session 1 runs 30-102 s (happy, 4): 72 one-second windows; clip 2 starts after the end
    assert len(w) == 72 and set(w["label"]) == {4} and set(w["split"]) == {"train"}
    np.testing.assert_allclose(sorted(w["start"]), np.arange(30, 102))


# ---------------------------------------------------------------------------------------------------- BCIC-IV-2a
GDF_CH = (["EEG-Fz"] + [f"EEG-{i}" for i in range(6)] + ["EEG-C3", "EEG-6", "EEG-Cz", "EEG-7", "EEG-C4"]
          + [f"EEG-{i}" for i in range(8, 15)] + ["EEG-Pz", "EEG-15", "EEG-16"] + B.EOG)


def _bnci_mat(path, real, trials_s, y, seconds=40.0):
    """A BNCI 2014-001 (MOABB) file: 3 EOG calibration runs without trials, then one run with trials."""
    X = _signals(real, B.ELECTRODES + ["EOG1", "EOG2", "EOG3"], 250.0, seconds).T * 1e6  # (samples, 25) µV
    runs = np.empty((1, 4), dtype=object)
    for k in range(3):
        runs[0, k] = {"X": X[:2500], "trial": np.zeros((0, 1)), "y": np.zeros((0, 1)), "fs": 250.0,
                      "classes": np.array(["left hand", "right hand", "feet", "tongue"], dtype=object),
                      "artifacts": np.zeros((0, 1)), "gender": "f", "age": 22.0}
    runs[0, 3] = {"X": X, "trial": (np.asarray(trials_s) * 250 + 1).astype(float).reshape(-1, 1),
                  "y": np.asarray(y, float).reshape(-1, 1), "fs": 250.0,
                  "classes": np.array(["left hand", "right hand", "feet", "tongue"], dtype=object),
                  "artifacts": np.zeros((len(y), 1)), "gender": "f", "age": 22.0}
    savemat(path, {"data": runs})


def test_bcic2a_moabb_layout_prepare(tmp_path, real_eeg):
    src = tmp_path / "001-2014"
    src.mkdir()
    _bnci_mat(src / "A01T.mat", real_eeg, [1, 9, 17, 25], [1, 2, 3, 4])
    _bnci_mat(src / "A08E.mat", real_eeg, [2, 10], [4, 2])
    recipe = get_recipe("bcic2a", cache_dir=str(tmp_path / "cache"))
    recs = recipe.recordings(src)
    assert [(r.recording, r.split) for r in recs] == [("bcic2a_A01T_run0", "train"), ("bcic2a_A08E_run0", "test")]
    assert all(r.path.suffix == ".fif" and r.path.parent == tmp_path / "cache" for r in recs)
    out = tmp_path / "st"
    prepare_store(recipe, source=src, out=out, progress=False)
    st = WindowStore.open(out)
    w = st.windows
    assert st.n_times == 256 and st.recording_channels("bcic2a_A01T_run0")[0] == B.PAIRS
    a01 = w[w["recording"] == "bcic2a_A01T_run0"].sort_values("start")
    # windows start at the cue, 2 s after each trial start; classes 1-4 -> 0-3
    np.testing.assert_allclose(a01["start"], [3, 11, 19, 27])
    assert a01["label"].tolist() == [0, 1, 2, 3]
    a08 = w[w["recording"] == "bcic2a_A08E_run0"].sort_values("start")
    assert a08["label"].tolist() == [3, 1] and set(a08["split"]) == {"test"}
    # the cache is reused (not rewritten) on a second listing
    mtime = recs[0].path.stat().st_mtime_ns
    recipe.recordings(src)
    assert recs[0].path.stat().st_mtime_ns == mtime


def _gdf_like_raw(real, codes_onsets, seconds=30.0):
    """An in-memory stand-in for a competition GDF (MNE cannot write GDF): its channel names and event codes."""
    info = mne.create_info(GDF_CH, 250.0, ["eeg"] * 22 + ["eog"] * 3)
    names = B.ELECTRODES + ["EOG1", "EOG2", "EOG3"]
    raw = mne.io.RawArray(_signals(real, names, 250.0, seconds), info, verbose="error")
    on, de = zip(*codes_onsets)
    raw.set_annotations(mne.Annotations(list(on), 0.0, list(de)))
    return raw


def test_bcic2a_gdf_events_and_channels(tmp_path, real_eeg):
    recipe = get_recipe("bcic2a")
    # evaluation session: cues 783, classes from the true-label file A01E.mat (classlabel 1-4)
    codes = [(1.0, "32766"), (2.0, "768"), (4.0, "783"), (10.0, "768"), (12.0, "783"), (13.0, "1023"),
             (18.0, "768"), (20.0, "783")]
    savemat(tmp_path / "A01E.mat", {"classlabel": np.array([[3], [1], [4]], dtype=np.uint8)})
    raw = _gdf_like_raw(real_eeg, codes)
    rec = Recording(path=tmp_path / "A01E.gdf", dataset="bcic2a", subject="A01", session="E", recording="x",
                    split="train", extra={"layout": "gdf", "labels": str(tmp_path / "A01E.mat")})
    ev = recipe.events(raw, rec)
    assert ev.mode == "locked" and ev.onsets.tolist() == [4.0, 12.0, 20.0] and ev.labels.tolist() == [2, 0, 3]
    assert raw.ch_names[:22] == B.ELECTRODES and raw.get_channel_types()[22:] == ["eog"] * 3
    data, names, _, _ = preprocess_raw(raw, recipe.config())
    assert names == B.PAIRS and data.shape[0] == 16
    i = B.ELECTRODES.index
    ref = raw.get_data(picks=[i("C3"), i("Cz")]) * 1e6
    assert np.corrcoef(data[1, 500:1500], mne.filter.resample(ref[0] - ref[1], up=32, down=125,
                                                             verbose="error")[500:1500])[0, 1] > 0.9
    # training session: cues 769-772 give the classes; a label file that disagrees is refused
    t_codes = [(2.0, "768"), (4.0, "772"), (10.0, "768"), (12.0, "769")]
    ev_t = B.cue_events([c for _, c in t_codes], [o for o, _ in t_codes])
    assert ev_t.labels.tolist() == [3, 0]
    with pytest.raises(ValueError, match="A01T.gdf.*disagrees"):
        B.cue_events([c for _, c in t_codes], [o for o, _ in t_codes], true_labels=np.array([4, 2]),
                     source="A01T.gdf")
    with pytest.raises(ValueError, match="unknown class"):
        B.cue_events(["783"], [1.0])


def test_bcic2a_gdf_listing_warns_without_labels(tmp_path):
    for n in ("A01T.gdf", "A01E.gdf", "A07T.gdf", "A07E.gdf"):
        (tmp_path / n).touch()
    (tmp_path / "true_labels").mkdir()
    savemat(tmp_path / "true_labels" / "A07E.mat", {"classlabel": np.ones((288, 1))})
    with pytest.warns(UserWarning, match="A01E.gdf has no true-label file"):
        recs = get_recipe("bcic2a").recordings(tmp_path)
    assert [(r.recording, r.split) for r in recs] == [("bcic2a_A01T", "train"), ("bcic2a_A07E", "val"),
                                                      ("bcic2a_A07T", "val")]
    assert recs[1].extra["labels"].endswith("true_labels/A07E.mat")


# ---------------------------------------------------------------------------------------------------- TUAB / TUEV
TUH_CH = [f"EEG {e}-REF" for e in ("FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T3",
                                   "T4", "T5", "T6", "A1", "A2", "FZ", "CZ", "PZ", "ROC", "LOC")] + \
    ["EEG EKG1-REF", "EMG-REF", "EEG 26-REF", "PHOTIC-REF", "IBI", "BURSTS", "SUPPR"]


def test_tuh_train_val_draw():
    subs = [f"aaaaaa{c}{d}" for c in "ab" for d in "abcde"]
    val = train_val_split(subs, val_fraction=0.2, seed=12345)
    assert len(val) == 2 and val <= set(subs)
    assert val == train_val_split(list(reversed(subs)), val_fraction=0.2, seed=12345)  # order-independent
    assert train_val_split(subs, val_fraction=0.0, seed=1) == set()


def test_tuab_prepare(tmp_path, real_eeg):
    root = tmp_path / "tuab" / "edf"
    files = {("train", "normal", "aaaaaaaa_s001_t000"): 25.0, ("train", "abnormal", "aaaaaaab_s002_t001"): 21.0,
             ("eval", "abnormal", "aaaaaaac_s001_t000"): 30.0}
    for (part, cls, stem), sec in files.items():
        _write_edf(root / part / cls / "01_tcp_ar" / f"{stem}.edf", real_eeg, TUH_CH, 250.0, sec)
    recipe = get_recipe("tuab", val_fraction="0")
    recs = recipe.recordings(tmp_path / "tuab")
    assert sorted((r.subject, r.split, r.label) for r in recs) == [
        ("aaaaaaaa", "train", 0), ("aaaaaaab", "train", 1), ("aaaaaaac", "test", 1)]
    out = tmp_path / "st"
    prepare_store(recipe, source=tmp_path / "tuab", out=out, progress=False)
    st = WindowStore.open(out)
    w = st.windows
    assert st.n_times == 640 and st.recording_channels("tuab_eval_abnormal_aaaaaaac_s001_t000")[0] == list(TCP_BIPOLAR)
    per = w.groupby("recording")["label"].agg(["count", "min"]).to_dict("index")
    assert per == {"tuab_train_normal_aaaaaaaa_s001_t000": {"count": 2, "min": 0},
                   "tuab_train_abnormal_aaaaaaab_s002_t001": {"count": 2, "min": 1},
                   "tuab_eval_abnormal_aaaaaaac_s001_t000": {"count": 3, "min": 1}}
    # the default 20 % of two training subjects rounds to none
    assert {r.split for r in get_recipe("tuab").recordings(tmp_path / "tuab") if r.subject != "aaaaaaac"} == {"train"}


def test_tuab_unexpected_layout_names_the_file(tmp_path):
    (tmp_path / "edf" / "train" / "misc").mkdir(parents=True)
    (tmp_path / "edf" / "train" / "misc" / "x_s001_t000.edf").touch()
    with pytest.raises(ValueError, match="x_s001_t000.edf.*normal"):
        get_recipe("tuab").recordings(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stray.edf").touch()
    with pytest.raises(ValueError, match="stray.edf.*'train' or 'eval'"):
        get_recipe("tuab").recordings(tmp_path / "other")


def test_tuev_prepare(tmp_path, real_eeg):
    root = tmp_path / "tuev" / "edf"
    tr = _write_edf(root / "train" / "aaaaaaar" / "aaaaaaar_00000001.edf", real_eeg, TUH_CH, 250.0, 30.0)
    ev = _write_edf(root / "eval" / "aaaaaaas" / "aaaaaaas_00000001.edf", real_eeg, TUH_CH, 250.0, 20.0)
    _write_edf(root / "train" / "aaaaaaat" / "aaaaaaat_00000002.edf", real_eeg, TUH_CH, 250.0, 6.0)  # no .rec
    # channel,start,stop,label: an event on two channels, one too near the start, one too near the end
    tr.with_suffix(".rec").write_text("3,5.0000,6.0000,1\n4,5.0000,6.0000,1\n0,10.0,11.0,4\n7,1.0,2.0,6\n"
                                      "12,28.5,29.5,5\n2,20.0,21.0,6\n")
    ev.with_suffix(".rec").write_text("1,8.0,9.0,2\n5,12.5,13.5,3\n")
    with pytest.warns(UserWarning, match="aaaaaaat_00000002.edf has no event file"):
        recs = get_recipe("tuev", val_fraction="0").recordings(tmp_path / "tuev")
    assert sorted((r.recording, r.split) for r in recs) == [("tuev_eval_aaaaaaas_00000001", "test"),
                                                           ("tuev_train_aaaaaaar_00000001", "train")]
    out = tmp_path / "st"
    _quiet(prepare_store, get_recipe("tuev", val_fraction="0"), source=tmp_path / "tuev", out=out, progress=False)
    st = WindowStore.open(out)
    w = st.windows
    assert st.n_times == 320 and st.recording_channels("tuev_eval_aaaaaaas_00000001")[0] == list(TCP_BIPOLAR)
    got = sorted(zip(w["recording"], w["start"].round(3), w["label"]))
    # windows [start - 2, start + 3): the 1.0 s event (before 2 s) and the 28.5 s one (past 30 s) give none
    assert got == sorted([("tuev_train_aaaaaaar_00000001", 3.0, 0), ("tuev_train_aaaaaaar_00000001", 3.0, 0),
                          ("tuev_train_aaaaaaar_00000001", 8.0, 3), ("tuev_train_aaaaaaar_00000001", 18.0, 5),
                          ("tuev_eval_aaaaaaas_00000001", 6.0, 1), ("tuev_eval_aaaaaaas_00000001", 10.5, 2)])
    assert st.label_names == {0: "SPSW", 1: "GPED", 2: "PLED", 3: "EYEM", 4: "ARTF", 5: "BCKG"}
    ded = get_recipe("tuev", dedupe="true").events(None, recs[1])
    assert len(ded.onsets) == 5 and read_rec(tr.with_suffix(".rec")).shape == (6, 4)


def test_tuev_bad_rec_line_names_the_file(tmp_path):
    p = tmp_path / "a_1.rec"
    p.write_text("0,1.0,2.0,7\n")
    with pytest.raises(ValueError, match=r"a_1.rec: line 1: label 7"):
        read_rec(p)
    p.write_text("0;1.0;2.0;1\n")
    with pytest.raises(ValueError, match=r"a_1.rec: line 1 .* not 'channel,start,stop,label'"):
        read_rec(p)
