"""What ``prepare`` tells the user about its input: recordings without windows, unused files, renames, grid caps
(issue 11 items 5 and 6)."""

from __future__ import annotations

import json
import warnings

import mne
import numpy as np
import pytest
from typer.testing import CliRunner

from neuript.cli import _register, app
from neuript.data.io import read_raw
from neuript.data.prepare import format_info, prepare_store, store_info
from neuript.data.preprocess import PreprocessConfig, preprocess_raw
from neuript.data.recipes import get_recipe
from neuript.electrodes import check_not_grid_cap, read_rename


@pytest.fixture()
def source(eegmat_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("Subject00_1.edf", "Subject00_2.edf"):
        (src / name).symlink_to(eegmat_dir / name)
    (src / "Subject99_1.EDF.bak").write_text("x")
    (src / "notes.txt").write_text("session notes")
    (src / "extra").mkdir()
    (src / "extra" / "other_recording.fif").write_bytes(b"")
    return src


def test_short_recordings_are_named_and_unused_files_listed(source, tmp_path):
    out = tmp_path / "store"
    cfg = get_recipe("eegmat").config()
    cfg.window_s = 100.0  # longer than the 62 s task run, shorter than the 182 s rest run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_store(get_recipe("eegmat"), source=source, out=out, config=cfg, progress=False)
    msg = [str(w.message) for w in caught if "gave no windows" in str(w.message)]
    assert msg and "Subject00_2" in msg[0] and "shorter than one 100 s window" in msg[0]
    info = store_info(out)
    assert list(info["empty_recordings"]) == [f"eegmat_Subject00_2 [{source / 'Subject00_2.edf'}]"]
    assert info["unused_files"]["recordings"] == ["extra/other_recording.fif"]
    assert info["unused_files"]["n_other"] == 2  # notes.txt, the .bak
    text = format_info(info)
    assert "recordings without windows (1)" in text and "extra/other_recording.fif" in text


def test_read_rename_items_and_files(tmp_path):
    assert read_rename(["EEG 000=Fp1", " EEG 001 = Fp2 "]) == {"EEG 000": "Fp1", "EEG 001": "Fp2"}
    (tmp_path / "m.json").write_text(json.dumps({"A": "Fp1"}))
    (tmp_path / "m.csv").write_text("old,new\nB,Fp2\n# comment\nC,F3\n")
    (tmp_path / "m.tsv").write_text("D\tF4\n")
    assert read_rename([str(tmp_path / f) for f in ("m.json", "m.csv", "m.tsv")]) == {
        "A": "Fp1", "B": "Fp2", "C": "F3", "D": "F4"}
    (tmp_path / "bad.csv").write_text("B,Fp2\nonlyone\n")
    with pytest.raises(ValueError, match="bad.csv line 2"):
        read_rename([str(tmp_path / "bad.csv")])
    with pytest.raises(ValueError, match="OLD=NEW"):
        read_rename(["Fp1"])


def test_prepare_rename_makes_odd_labels_usable_and_is_recorded(eegmat_dir, tmp_path):
    raw = read_raw(eegmat_dir / "Subject00_2.edf")
    plain = tmp_path / "plain"
    plain.mkdir()
    raw.copy().crop(0, 30).save(plain / "Subject00_2_raw.fif", verbose="error")
    odd = {ch: f"chan{k:02d}" for k, ch in enumerate(raw.ch_names) if ch.startswith("EEG ") and "-" not in ch}
    raw.rename_channels(odd)
    src = tmp_path / "src"
    src.mkdir()
    raw.crop(0, 30).save(src / "Subject00_2_raw.fif", verbose="error")
    mapping = tmp_path / "map.csv"
    mapping.write_text("".join(f"{new},{old}\n" for old, new in odd.items()))
    _register()
    runner = CliRunner()
    args = ["prepare", "table", "--manifest", str(_manifest(src, tmp_path)), "--out", str(tmp_path / "st"), "-q"]
    bad = runner.invoke(app, args)
    assert bad.exit_code != 0  # unknown labels: refused
    ok = runner.invoke(app, args + ["--rename", str(mapping), "--overwrite"])
    assert ok.exit_code == 0, ok.output
    manifest = json.loads((tmp_path / "st" / "manifest.json").read_text())
    assert manifest["rename"]["chan00"] == "EEG Fp1"
    ref = runner.invoke(app, ["prepare", "table", "--manifest", str(_manifest(plain, tmp_path / "plain")),
                              "--out", str(tmp_path / "st_plain"), "-q"])
    assert ref.exit_code == 0, ref.output
    st, st_plain = store_info(tmp_path / "st"), store_info(tmp_path / "st_plain")
    assert st["windows"] == st_plain["windows"] > 0
    assert st["montages"] == st_plain["montages"]


def _manifest(src, tmp_path):
    m = tmp_path / "manifest.csv"
    m.write_text(f"path,subject,label,split\n{src / 'Subject00_2_raw.fif'},00,task,train\n")
    return m


def test_grid_labelled_cap_is_refused(eegmat_dir):
    grid = [f"{row}{k}" for row in "ABCD" for k in range(1, 33)]
    with pytest.raises(ValueError, match="labelled as a grid.*BioSemi.*--rename"):
        check_not_grid_cap(grid, "cap.bdf")
    check_not_grid_cap(["Fp1", "C3", "C4", "A1", "A2", "T10", "F9"], "1020")  # real 10-05 names pass
    # through preprocessing: a real signal under grid labels
    raw = read_raw(eegmat_dir / "Subject00_2.edf").pick(list(range(19))).crop(0, 10)
    data = np.repeat(raw.get_data(), 4, axis=0)[:76]
    names = [f"{row}{k}" for row in "ABC" for k in range(1, 33)][:76]
    fake = mne.io.RawArray(data, mne.create_info(names, raw.info["sfreq"], "eeg"), verbose="error")
    with pytest.raises(ValueError, match="labelled as a grid"):
        preprocess_raw(fake, PreprocessConfig(reference="average"))


def test_recording_warnings_are_kept_with_the_shard_and_shown_by_info(eegmat_dir, tmp_path):
    """The worker silences warnings (a parallel run would interleave them); they must not be lost: each shard
    keeps its recording's warnings, prepare sums them up in one warning, and ``neuript info`` lists them."""
    raw = read_raw(eegmat_dir / "Subject00_2.edf")
    extra = raw.copy().pick(["EEG O2"]).rename_channels({"EEG O2": "mystery7"})
    raw.add_channels([extra])
    src = tmp_path / "src"
    src.mkdir()
    raw.crop(0, 30).save(src / "Subject00_2_raw.fif", verbose="error")
    _register()
    runner = CliRunner()
    out = tmp_path / "st"
    args = ["prepare", "table", "--manifest", str(_manifest(src, tmp_path)), "--out", str(out), "-q",
            "--set", "drop_unknown=true"]
    res = runner.invoke(app, args)  # the CLI prints warnings to stderr as "warning: ..."
    assert res.exit_code == 0, res.output
    summary = [ln for ln in res.output.splitlines() if "came with warnings" in ln]
    assert len(summary) == 1 and "mystery7" in summary[0] and f"neuript info {out}" in summary[0]
    shard = json.loads(next((out / "shards").glob("*.json")).read_text())
    assert any("dropping channels with unknown names ['mystery7']" in m for m in shard["warnings"])
    assert "mystery7" not in shard["ch_names"]
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0, info.output
    assert "recordings with warnings (1)" in info.output and "mystery7" in info.output
    # resumed run: nothing prepared now, so no summary warning; the stored warnings stay
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "came with warnings" not in again.output
    assert store_info(out)["warnings"]
    # direct callers of the library get the summary as a Python warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recipe = get_recipe("table", manifest=str(tmp_path / "manifest.csv"))
        cfg = recipe.config()
        cfg.drop_unknown = True
        report = prepare_store(recipe, source=src, out=tmp_path / "st2", config=cfg, progress=False)
    assert [w for w in caught if "came with warnings" in str(w.message)]
    assert "mystery7" in next(iter(report["warnings"].values()))[0]


def test_clean_recording_has_no_warnings(eegmat_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    read_raw(eegmat_dir / "Subject00_2.edf").crop(0, 30).save(src / "Subject00_2_raw.fif", verbose="error")
    _register()
    res = CliRunner().invoke(app, ["prepare", "table", "--manifest", str(_manifest(src, tmp_path)),
                                   "--out", str(tmp_path / "st"), "-q"])
    assert res.exit_code == 0, res.output
    assert store_info(tmp_path / "st")["warnings"] == {}


def test_recipe_read_hook_prepares_files_mne_cannot_read(eegmat_dir, tmp_path, monkeypatch):
    """A custom recipe reads its own format (here ``.npy`` + channel names) through ``Recipe.read``; the store
    equals the one prepared from the same signal in a FIF file."""
    from neuript.data import recipes as R

    raw = read_raw(eegmat_dir / "Subject00_2.edf").crop(0, 30)
    src = tmp_path / "npy"
    src.mkdir()
    np.save(src / "Subject00_2.npy", raw.get_data())
    fif = tmp_path / "fif"
    fif.mkdir()
    raw.save(fif / "Subject00_2_raw.fif", verbose="error")
    ch_names, sfreq = list(raw.ch_names), float(raw.info["sfreq"])

    class NpyRecipe(R.Recipe):
        label_names = {0: "rest", 1: "task"}

        def recordings(self, source):
            return [R.Recording(path=p, dataset="mine", subject="00", session="2", recording=p.stem.split("_raw")[0],
                                split="train", label=1) for p in sorted(source.iterdir())]

        def read(self, rec):
            if rec.path.suffix != ".npy":
                return super().read(rec)
            return mne.io.RawArray(np.load(rec.path), mne.create_info(ch_names, sfreq, "eeg"), verbose="error")

    monkeypatch.setitem(R.RECIPES, "npy_test", NpyRecipe)
    NpyRecipe.name = "npy_test"
    recipe = R.get_recipe("npy_test")
    a = prepare_store(recipe, source=src, out=tmp_path / "a", progress=False)
    b = prepare_store(recipe, source=fif, out=tmp_path / "b", progress=False)
    assert a["n_windows"] == b["n_windows"] > 0
    from neuript.data.store import WindowStore

    sa, sb = WindowStore.open(tmp_path / "a"), WindowStore.open(tmp_path / "b")
    np.testing.assert_allclose(sa.read(np.arange(len(sa))), sb.read(np.arange(len(sb))), atol=0.05)

    class Broken(NpyRecipe):
        def read(self, rec):
            return np.load(rec.path)

    monkeypatch.setitem(R.RECIPES, "npy_broken", Broken)
    Broken.name = "npy_broken"
    rep = prepare_store(R.get_recipe("npy_broken"), source=src, out=tmp_path / "c", progress=False,
                        raise_on_error=False)
    assert "read() returned ndarray, not an mne.io.BaseRaw" in next(iter(rep["failed"].values()))
