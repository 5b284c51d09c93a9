"""Window-store integrity: truncated, missing or edited parts are named with the fix, and ``prepare`` rebuilds
exactly the damaged recording on resume (issue 11 item 7)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from neuript.data.prepare import prepare_store
from neuript.data.recipes import get_recipe
from neuript.data.store import StoreError, WindowStore, file_sha256


@pytest.fixture()
def store_copy(eegmat_store, tmp_path):
    dst = tmp_path / "store"
    shutil.copytree(eegmat_store, dst)
    return dst


def _shard(store, k=0):
    return sorted((store / "shards").glob("*.npy"))[k]


def test_checksum_and_size_recorded_at_write_time(eegmat_store):
    for j in (eegmat_store / "shards").glob("*.json"):
        meta = json.loads(j.read_text())
        npy = j.with_suffix(".npy")
        assert meta["npy_bytes"] == npy.stat().st_size
        assert meta["npy_sha256"] == file_sha256(npy)


def test_truncated_shard_is_named_at_open(store_copy):
    npy = _shard(store_copy)
    data = npy.read_bytes()
    npy.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=rf"{npy.name} has \d+ bytes but \d+ were written.*rerun the `neuript prepare`"):
        WindowStore.open(store_copy)


def test_missing_shard_is_named_at_open(store_copy):
    npy = _shard(store_copy, 1)
    npy.unlink()
    with pytest.raises(StoreError, match=rf"{npy.name} is missing"):
        WindowStore.open(store_copy)


def test_edited_shard_fails_its_checksum_on_first_read(store_copy):
    npy = _shard(store_copy)
    arr = np.load(npy)
    arr[0, 0, :10] += 50.0  # same size and header, other samples
    np.save(npy, arr)
    st = WindowStore.open(store_copy)  # size and header still agree
    rows = np.flatnonzero(st.windows["shard"].to_numpy() == st.recordings.index(npy.stem))
    with pytest.raises(StoreError, match="does not match the checksum"):
        st.read(rows[:2])
    # the other shards still read
    other = np.flatnonzero(st.windows["shard"].to_numpy() != st.recordings.index(npy.stem))
    assert st.read(other[:2]).shape[0] == 2


def test_corrupt_metadata_and_manifest_are_named(store_copy):
    meta = sorted((store_copy / "shards").glob("*.json"))[0]
    meta.write_text("{not json")
    with pytest.raises(StoreError, match=rf"{meta.name} is not valid shard metadata"):
        WindowStore.open(store_copy)
    (store_copy / "manifest.json").write_text("{")
    with pytest.raises(StoreError, match="manifest.json is not valid JSON"):
        WindowStore.open(store_copy)


def test_manifest_count_mismatch_is_named(store_copy):
    m = json.loads((store_copy / "manifest.json").read_text())
    m["summary"]["n_windows"] += 7
    (store_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="manifest.json counts"):
        WindowStore.open(store_copy)


def test_edited_window_table_is_rebuilt_with_a_warning(store_copy):
    table = store_copy / "windows.csv"
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines[:-5]) + "\n")  # five windows dropped by hand
    with pytest.warns(UserWarning, match="disagrees with the shard metadata"):
        st = WindowStore.open(store_copy)
    assert len(st) == len(lines) - 1


def test_prepare_resume_rebuilds_only_the_damaged_recording(store_copy, eegmat_subset):
    npy = _shard(store_copy)
    good = _shard(store_copy, 1)
    good_mtime = good.stat().st_mtime_ns
    before = np.load(npy)
    arr = before.copy()
    arr[0, 0, 0] += 1.0
    np.save(npy, arr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = prepare_store(get_recipe("eegmat"), source=eegmat_subset, out=store_copy, progress=False)
    assert any(f"rebuilding {npy.stem}" in str(w.message) for w in caught)
    assert report["done"] == 1 and report["skipped"] == 3
    np.testing.assert_array_equal(np.load(npy), before)
    assert good.stat().st_mtime_ns == good_mtime
    WindowStore.open(store_copy).read(np.arange(3))
