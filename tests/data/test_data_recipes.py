"""Recipes: registry, EEGMMIDB run-dependent labels, Sleep-EDFx hypnogram parsing (real file + synthetic EDFs)."""

from __future__ import annotations

from datetime import datetime, timezone

import mne
import numpy as np
import pytest

from neuript.data.recipes import RECIPES, Recipe, get_recipe, list_recipes, register_recipe
from neuript.data.recipes.eegmmidb import annotation_label
from neuript.data.recipes.sleep_edfx import hypnogram_events
from neuript.data.prepare import prepare_store
from neuript.data.store import WindowStore


def test_registry():
    assert {"eegmat", "eegmmidb", "sleep_edfx"} <= set(list_recipes())
    with pytest.raises(KeyError, match="available"):
        get_recipe("nope")
    with pytest.raises(ValueError, match="unknown option"):
        get_recipe("eegmat", montag="tcp")

    @register_recipe("_test_dummy")
    class Dummy(Recipe):
        options = {"x": (1, "an int")}

    assert RECIPES["_test_dummy"] is Dummy and Dummy(x="3").opts["x"] == 3
    del RECIPES["_test_dummy"]


@pytest.mark.parametrize("run, desc, label", [
    (3, "T1", 1), (3, "T2", 2), (4, "T0", 0), (12, "T2", 2),
    (5, "T1", 3), (5, "T2", 4), (14, "T1", 3), (10, "T0", 0), (1, "T0", 5), (2, "T0", 6),
])
def test_eegmmidb_labels(run, desc, label):
    assert annotation_label(run, desc) == label


def test_eegmmidb_prepare_labels_follow_annotations(tmp_path, shared_data):
    src = tmp_path / "src"
    src.mkdir()
    for r in ("R01", "R04", "R06"):
        (src / f"S001{r}.edf").symlink_to(shared_data / "eegmmidb" / "S001" / f"S001{r}.edf")
    out = tmp_path / "mm"
    prepare_store(get_recipe("eegmmidb", reject_uv="none"), source=src, out=out, progress=False, n_jobs=2)
    st = WindowStore.open(out)
    w = st.windows
    assert set(w["split"]) == {"pretrain"} and st.n_times == 256
    assert set(w.loc[w["session"] == "R01", "label"]) == {5}
    assert set(w.loc[w["session"] == "R04", "label"]) <= {0, 1, 2} and {1, 2} <= set(w.loc[w["session"] == "R04", "label"])
    assert set(w.loc[w["session"] == "R06", "label"]) <= {0, 3, 4} and {3, 4} <= set(w.loc[w["session"] == "R06", "label"])
    # the label of each window is that of the annotation its start falls in
    raw = mne.io.read_raw_edf(src / "S001R04.edf", verbose="error")
    ann = raw.annotations
    for start, lab in zip(w.loc[w["session"] == "R04", "start"], w.loc[w["session"] == "R04", "label"]):
        k = np.searchsorted(ann.onset, start, side="right") - 1
        assert annotation_label(4, ann.description[k]) == lab
    # event-locked mode: one window per trial
    out2 = tmp_path / "mm_ev"
    prepare_store(get_recipe("eegmmidb", reject_uv="none", windows="events", runs="4"), source=src, out=out2,
                  progress=False)
    w2 = WindowStore.open(out2).windows
    assert len(w2) == len(ann) - 1 or len(w2) == len(ann)  # the last trial may run past the end
    np.testing.assert_allclose(w2["start"].to_numpy(), np.round(ann.onset[: len(w2)] * 64) / 64)


def test_real_hypnogram_parsing(shared_data):
    ann = mne.read_annotations(shared_data / "formats" / "SC4001EC-Hypnogram.edf")
    ev_all = hypnogram_events(ann, trim_wake_min=None)
    total_epochs = int(round(sum(ann.duration) / 30))
    assert len(ev_all.onsets) == total_epochs and np.all(np.diff(ev_all.onsets) == 30)
    assert set(ev_all.labels.tolist()) <= {-1, 0, 1, 2, 3, 4} and {0, 1, 2, 3, 4} <= set(ev_all.labels.tolist())
    stage4 = sum(int(round(d / 30)) for d, s in zip(ann.duration, ann.description) if s == "Sleep stage 4")
    stage3 = sum(int(round(d / 30)) for d, s in zip(ann.duration, ann.description) if s == "Sleep stage 3")
    assert (ev_all.labels == 3).sum() == stage3 + stage4, "R&K stages 3 and 4 merge into N3"
    ev = hypnogram_events(ann, trim_wake_min=30)
    sleep = np.flatnonzero(ev.labels > 0)
    kept_wake = np.flatnonzero(ev.labels == 0)
    assert kept_wake.min() >= sleep.min() - 60 and kept_wake.max() <= sleep.max() + 60
    assert (ev.labels == 0).sum() < (ev_all.labels == 0).sum()


def _write_sleep_pair(folder, name="SC4012E0", hyp="SC4012EC", minutes=10, seed=0):
    rng = np.random.default_rng(seed)
    sf = 100.0
    n = int(minutes * 60 * sf)
    info = mne.create_info(["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "Event marker"], sf,
                           ["eeg", "eeg", "eog", "misc"])
    raw = mne.io.RawArray(rng.normal(0, 10e-6, (4, n)), info, verbose="error")
    raw.set_meas_date(datetime(1989, 4, 24, tzinfo=timezone.utc))
    psg = folder / f"{name}-PSG.edf"
    mne.export.export_raw(psg, raw, fmt="edf", verbose="error")
    stages = ["Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage 4",
              "Sleep stage R", "Sleep stage ?", "Movement time"]
    onsets = np.arange(0, minutes * 60, 60.0)
    descs = [stages[i % len(stages)] for i in range(len(onsets))]
    hraw = mne.io.RawArray(np.zeros((1, n)), mne.create_info(["dummy"], sf, "misc"), verbose="error")
    hraw.set_meas_date(datetime(1989, 4, 24, tzinfo=timezone.utc))
    hraw.set_annotations(mne.Annotations(onsets, [60.0] * len(onsets), descs, orig_time=hraw.info["meas_date"]))
    mne.export.export_raw(folder / f"{hyp}-Hypnogram.edf", hraw, fmt="edf", verbose="error")
    return onsets, descs


def test_sleep_edfx_recipe_on_written_files(tmp_path):
    src = tmp_path / "sleep"
    src.mkdir()
    onsets, descs = _write_sleep_pair(src)
    out = tmp_path / "st"
    prepare_store(get_recipe("sleep_edfx", trim_wake_min="none"), source=src, out=out, progress=False)
    st = WindowStore.open(out)
    w = st.windows
    assert st.n_times == 30 * 64 and st.recording_channels(w["recording"][0])[0] == ["Fpz-Cz", "Pz-Oz"]
    assert set(w["split"]) == {"train"} and set(w["subject"]) == {"01"}
    # 10 one-minute stages x 2 epochs; '?' and movement (2 minutes) give no windows
    expect = {"Sleep stage W": 0, "Sleep stage 1": 1, "Sleep stage 2": 2, "Sleep stage 3": 3, "Sleep stage 4": 3,
              "Sleep stage R": 4}
    want = [(o + k * 30, expect[d]) for o, d in zip(onsets, descs) if d in expect for k in range(2)]
    assert len(w) == len(want)
    got = sorted(zip(w["start"].round(3), w["label"]))
    assert got == sorted(want)
    # the split rule: subject 18 -> val, 19 -> test
    assert get_recipe("sleep_edfx")._split(18) == "val" and get_recipe("sleep_edfx")._split(19) == "test"


def test_sleep_edfx_missing_hypnogram(tmp_path):
    src = tmp_path / "sleep"
    src.mkdir()
    _write_sleep_pair(src)
    (src / "SC4012EC-Hypnogram.edf").unlink()
    with pytest.raises(FileNotFoundError, match="SC4012E0-PSG.edf.*Hypnogram"):
        get_recipe("sleep_edfx").recordings(src)


def test_file_extensions_match_case_insensitively(shared_data, tmp_path):
    import shutil
    import warnings

    for name, new in (("Subject00_1.edf", "Subject00_1.EDF"), ("Subject00_2.edf", "Subject00_2.Edf")):
        shutil.copy(shared_data / "eegmat" / name, tmp_path / new)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        recs = get_recipe("eegmat").recordings(tmp_path)
    assert sorted(r.recording for r in recs) == ["eegmat_Subject00_1", "eegmat_Subject00_2"]
