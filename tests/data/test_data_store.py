"""Window store: eegmat prepare on a subset, corrupt file among good ones, resume, info, CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from neuript.data.io import read_raw
from neuript.data.preprocess import preprocess_raw, sliding_windows
from neuript.data.recipes import get_recipe
from neuript.data.prepare import PrepareError, format_info, prepare_store, store_info
from neuript.data.store import WindowStore
from neuript.electrodes import TCP_BIPOLAR


def test_eegmat_subset_splits_labels_and_counts(eegmat_store, eegmat_subset):
    st = WindowStore.open(eegmat_store)
    w = st.windows
    assert st.sfreq == 64.0 and st.n_times == 320 and st.label_names == {0: "rest", 1: "task"}
    assert set(w["split"]) == {"train", "val"}
    assert set(w.loc[w["subject"] == "00", "split"]) == {"train"}
    assert set(w.loc[w["subject"] == "28", "split"]) == {"val"}
    for rec, g in w.groupby("recording"):
        run = rec[-1]
        assert set(g["label"]) == {0 if run == "1" else 1}
        raw = read_raw(eegmat_subset / f"{rec.replace('eegmat_', '')}.edf", preload=False)
        assert len(g) == int(raw.n_times / raw.info["sfreq"] // 5), rec
        np.testing.assert_allclose(g["start"].to_numpy(), np.arange(len(g)) * 5.0)
    counts = w.groupby("label").size().to_dict()
    assert counts[0] == 72 and counts[1] == 24  # 2 subjects x (36 rest + 12 task)
    chs, pos = st.recording_channels("eegmat_Subject00_1")
    assert chs == list(TCP_BIPOLAR) and pos.shape == (20, 3) and set(w["montage"]) == {"tcp20"}
    assert st.config["preprocess"]["reference"] == "tcp" and st.config["recipe"] == "eegmat"


def test_store_read_matches_preprocess(eegmat_store, eegmat_subset):
    st = WindowStore.open(eegmat_store)
    w = st.windows
    rows = np.flatnonzero(w["recording"].to_numpy() == "eegmat_Subject28_2")
    got = st.read(rows[::-1])
    assert got.dtype == np.float32 and got.shape == (len(rows), 20, 320)
    cfg = get_recipe("eegmat").config()
    data, *_ = preprocess_raw(read_raw(eegmat_subset / "Subject28_2.edf"), cfg)
    want, _ = sliding_windows(data, 320)
    np.testing.assert_allclose(got[::-1], want.astype(np.float16).astype(np.float32), rtol=0, atol=0)
    with pytest.raises(IndexError):
        st.read([len(st)])


def test_store_info_and_cli(eegmat_store):
    info = store_info(eegmat_store)
    assert info["splits"]["train"]["classes"] == {"rest": 36, "task": 12}
    assert info["splits"]["val"]["classes"] == {"rest": 36, "task": 12}
    assert info["montages"]["tcp20"]["n_channels"] == 20
    text = format_info(info)
    assert "train" in text and "rejected" in text
    from neuript.cli import _register, app

    _register()
    runner = CliRunner()
    res = runner.invoke(app, ["info", str(eegmat_store)])
    assert res.exit_code == 0, res.output
    assert "tcp20" in res.output and "rest=36" in res.output
    for verb in ("prepare", "info"):
        res = runner.invoke(app, [verb, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output
    res = runner.invoke(app, ["info", str(eegmat_store.parent / "missing")])
    assert res.exit_code == 2 and "not a neuript window store" in res.output


def test_corrupt_file_among_good_ones_then_resume(tmp_path, eegmat_dir):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("Subject01_2.edf", "Subject29_2.edf"):
        (src / name).symlink_to(eegmat_dir / name)
    blob = (eegmat_dir / "Subject02_2.edf").read_bytes()
    (src / "Subject02_2.edf").write_bytes(blob[: len(blob) - 5000])  # truncated copy
    out = tmp_path / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(PrepareError) as ei:
            prepare_store(get_recipe("eegmat"), source=src, out=out, n_jobs=2, progress=False)
    msg = str(ei.value)
    assert "Subject02_2.edf" in msg and "truncated" in msg and "rerun" in msg
    st = WindowStore.open(out)
    assert sorted(st.recordings) == ["eegmat_Subject01_2", "eegmat_Subject29_2"] and len(st) == 24
    info = store_info(out)
    assert not info["complete"] and "eegmat_Subject02_2" in info["failed"]
    assert "INCOMPLETE" in format_info(info)
    # fix the file and rerun the same command: only the failed recording is prepared
    (src / "Subject02_2.edf").unlink()
    (src / "Subject02_2.edf").symlink_to(eegmat_dir / "Subject02_2.edf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rep = prepare_store(get_recipe("eegmat"), source=src, out=out, n_jobs=2, progress=False)
    assert rep["done"] == 1 and rep["skipped"] == 2 and not rep["failed"]
    info = store_info(out)
    assert info["complete"] and info["windows"] == 36 and not info["failed"]


def test_resume_after_kill_and_settings_guard(tmp_path, eegmat_dir):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("Subject03_2.edf", "Subject04_2.edf"):
        (src / name).symlink_to(eegmat_dir / name)
    out = tmp_path / "store"
    kw = dict(source=src, out=out, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("eegmat"), **kw)
        before = WindowStore.open(out).read(np.arange(24))
        # simulate a kill mid-recording: its .json (the commit marker) never got written, a temp file is left
        (out / "shards" / "eegmat_Subject04_2.json").unlink()
        (out / "shards" / ".eegmat_Subject04_2.npy.tmp123").write_bytes(b"partial")
        rep = prepare_store(get_recipe("eegmat"), **kw)
        assert rep["done"] == 1 and rep["skipped"] == 1
        np.testing.assert_array_equal(WindowStore.open(out).read(np.arange(24)), before)
        with pytest.raises(FileExistsError, match="other settings"):
            prepare_store(get_recipe("eegmat", montage="average"), **kw)
        rep = prepare_store(get_recipe("eegmat", montage="average"), overwrite=True, dtype="float32", **kw)
    st = WindowStore.open(out)
    assert rep["done"] == 2 and st.dtype == "float32" and len(st.recording_channels("eegmat_Subject03_2")[0]) == 19


def test_rejection_counted_per_reason(tmp_path, eegmat_dir):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Subject05_2.edf").symlink_to(eegmat_dir / "Subject05_2.edf")
    out = tmp_path / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rep = prepare_store(get_recipe("eegmat", reject_uv="20"), source=src, out=out, progress=False)
    st = WindowStore.open(out)
    meta = st.recording_meta("eegmat_Subject05_2")
    assert meta["n_windows_total"] == 12
    assert meta["rejected"]["amplitude"] == 12 - len(st) and rep["rejected"]["amplitude"] == 12 - len(st)
    assert (st.windows["max_abs_uv"] <= 20).all()
    assert 0 < meta["rejected"]["amplitude"], "a 20 µV threshold must reject some real windows"
    assert store_info(out)["rejected"]["amplitude"] == meta["rejected"]["amplitude"]


def test_missing_split_warns_not_crashes(tmp_path, eegmat_dir):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Subject07_2.edf").symlink_to(eegmat_dir / "Subject07_2.edf")
    with pytest.warns(UserWarning, match="'val' split"):
        recs = get_recipe("eegmat").recordings(src)
    assert [r.split for r in recs] == ["train"]


def test_cli_prepare_reports_bad_file_and_exit_code(tmp_path, eegmat_dir):
    from neuript.cli import _register, app

    src = tmp_path / "src"
    src.mkdir()
    (src / "Subject06_2.edf").symlink_to(eegmat_dir / "Subject06_2.edf")
    (src / "Subject07_2.edf").write_bytes(b"not an edf at all" * 40)
    _register()
    runner = CliRunner()
    args = ["prepare", "eegmat", "--source", str(src), "--out", str(tmp_path / "st"), "-q", "--dtype", "float32",
            "--set", "l_freq=0.5"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "Subject07_2.edf" in res.output and "task=12" in res.output
    st = WindowStore.open(tmp_path / "st")
    assert st.dtype == "float32" and st.config["preprocess"]["l_freq"] == 0.5 and len(st) == 12
    res = runner.invoke(app, ["prepare", "eegmat", "--source", ".", "--out", ".", "--list-options"])
    assert res.exit_code == 0 and "montage" in res.output and "reject_uv" in res.output
    res = runner.invoke(app, ["prepare", "nope", "--source", str(src), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "available" in res.output
    res = runner.invoke(app, ["prepare", "eegmat", "--source", str(src), "--out", str(tmp_path / "y"),
                              "--set", "bogus=1"])
    assert res.exit_code == 2 and "bogus" in res.output


def test_parallel_and_serial_give_identical_stores(tmp_path, eegmat_dir):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("Subject10_2.edf", "Subject11_2.edf", "Subject30_2.edf"):
        (src / name).symlink_to(eegmat_dir / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("eegmat"), source=src, out=tmp_path / "a", n_jobs=1, progress=False)
        prepare_store(get_recipe("eegmat"), source=src, out=tmp_path / "b", n_jobs=2, progress=False)
    a, b = WindowStore.open(tmp_path / "a"), WindowStore.open(tmp_path / "b")
    assert a.windows.drop(columns=["shard"]).equals(b.windows.drop(columns=["shard"]))
    np.testing.assert_array_equal(a.read(np.arange(len(a))), b.read(np.arange(len(b))))


def test_recordings_removed_from_source_are_reported(tmp_path, eegmat_dir):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("Subject12_2.edf", "Subject13_2.edf"):
        (src / name).symlink_to(eegmat_dir / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare_store(get_recipe("eegmat"), source=src, out=tmp_path / "st", progress=False)
    (src / "Subject13_2.edf").unlink()
    with pytest.warns(UserWarning, match=r"no longer lists.*Subject13_2"):
        prepare_store(get_recipe("eegmat"), source=src, out=tmp_path / "st", progress=False)
