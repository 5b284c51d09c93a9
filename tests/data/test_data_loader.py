"""Loader: montage-grouped batches over several stores, determinism, workers, DDP sharding, transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuript.data.loader import MontageBatchSampler, WindowDataset, make_loader
from neuript.data.preprocess import alaw
from neuript.data.store import WindowStore


def _batches(loader):
    return [(b["montage"], b["index"].tolist()) for b in loader]


def test_items_and_transform(eegmat_store):
    st = WindowStore.open(eegmat_store)
    ds = WindowDataset(eegmat_store, split="train")
    raw = WindowDataset([st], split="train", transform=None)
    assert len(ds) == (st.windows["split"] == "train").sum() == 48
    item = ds[3]
    assert set(item) == {"x", "label", "montage", "index"} and item["x"].shape == (20, 320)
    assert item["x"].dtype == torch.float32 and item["montage"] == "tcp20" and item["index"] == 3
    np.testing.assert_allclose(item["x"].numpy(), alaw(raw[3]["x"].numpy()), rtol=1e-6)
    local = np.flatnonzero(st.windows["split"].to_numpy() == "train")[3]
    np.testing.assert_array_equal(raw[3]["x"].numpy(), st.read([local])[0])
    assert ds.montage_info("tcp20")["ch_names"][0] == "Fp1-F7"
    table = ds.windows
    assert len(table) == len(ds) and (table["split"] == "train").all()
    assert table["label"].tolist() == [ds[i]["label"] for i in range(len(ds))]
    with pytest.raises(KeyError):
        ds.montage_info("nope")


def test_mixed_montages_one_per_batch(eegmat_store, eegmat_car_store):
    ds = WindowDataset([eegmat_store, eegmat_car_store], split=["train", "val"])
    assert ds.montages == sorted(["tcp20", next(m for m in ds.montages if m != "tcp20")])
    loader = make_loader(ds, batch_size=16, seed=3)
    seen = []
    for b in loader:
        C = 20 if b["montage"] == "tcp20" else 19
        assert b["x"].shape[1:] == (C, 320) and b["positions"].shape == (C, 3) and len(b["ch_names"]) == C
        assert b["label"].dtype == torch.long and b["x"].shape[0] == b["index"].shape[0] <= 16
        assert all(ds.montage[i] == b["montage"] for i in b["index"].tolist())
        assert (ds.windows["montage"].iloc[b["index"].numpy()] == b["montage"]).all()
        seen += b["index"].tolist()
    assert sorted(seen) == list(range(len(ds)))
    assert {m for m, _ in _batches(loader)} == set(ds.montages)


def test_deterministic_shuffling_per_epoch(eegmat_store, eegmat_car_store):
    ds = WindowDataset([eegmat_store, eegmat_car_store])
    a, b = make_loader(ds, batch_size=8, seed=7), make_loader(ds, batch_size=8, seed=7)
    assert _batches(a) == _batches(b)
    a.batch_sampler.set_epoch(1)
    e1 = _batches(a)
    assert e1 != _batches(b)
    b.batch_sampler.set_epoch(1)
    assert e1 == _batches(b)
    assert _batches(make_loader(ds, batch_size=8, seed=8)) != _batches(b)
    unshuffled = _batches(make_loader(ds, batch_size=8, shuffle=False))
    flat = [i for _, idx in unshuffled for i in idx]
    assert sorted(flat) == list(range(len(ds)))
    for m in ds.montages:  # unshuffled: montage by montage, dataset order within each
        mine = [i for i in flat if ds.montage[i] == m]
        assert mine == sorted(mine)


def test_workers_give_same_batches(eegmat_store):
    ds = WindowDataset(eegmat_store)
    l0 = make_loader(ds, batch_size=10, seed=1, num_workers=0)
    l2 = make_loader(ds, batch_size=10, seed=1, num_workers=2)
    b0, b2 = list(l0), list(l2)
    assert [x["index"].tolist() for x in b0] == [x["index"].tolist() for x in b2]
    for x, y in zip(b0, b2):
        torch.testing.assert_close(x["x"], y["x"])


@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_sharding_disjoint_and_equal(drop_last):
    montages = ["a"] * 37 + ["b"] * 22 + ["c"] * 5
    world = 3
    per_rank = []
    for r in range(world):
        s = MontageBatchSampler(montages, batch_size=4, seed=11, rank=r, world_size=world, drop_last=drop_last)
        s.set_epoch(2)
        per_rank.append(list(s))
        assert len(s) == len(per_rank[-1])
    assert len({len(p) for p in per_rank}) == 1, "every rank must get the same number of batches"
    flat = [tuple(b) for p in per_rank for b in p]
    for b in flat:
        assert len({montages[i] for i in b}) == 1
    full = MontageBatchSampler(montages, batch_size=4, seed=11, drop_last=drop_last)
    full.set_epoch(2)
    all_batches = [tuple(b) for b in full]
    if drop_last:
        assert len(set(flat)) == len(flat), "ranks never overlap"
        assert set(flat) <= set(all_batches)
    else:
        assert set(flat) == set(all_batches), "every batch is seen by some rank"
        assert len(flat) - len(set(flat)) == (-len(all_batches)) % world, "only the padding repeats"
    with pytest.raises(ValueError):
        MontageBatchSampler(montages, batch_size=4, rank=3, world_size=3)


def test_make_loader_rank_shards(eegmat_store):
    ds = WindowDataset(eegmat_store)
    r0 = _batches(make_loader(ds, batch_size=5, seed=0, rank=0, world_size=2))
    r1 = _batches(make_loader(ds, batch_size=5, seed=0, rank=1, world_size=2))
    assert len(r0) == len(r1)
    i0 = {i for _, b in r0 for i in b}
    i1 = {i for _, b in r1 for i in b}
    assert i0 | i1 == set(range(len(ds)))


def test_mixing_window_lengths_is_an_error(tmp_path, eegmat_store, shared_data):
    from neuript.data.recipes import get_recipe
    from neuript.data.prepare import prepare_store

    src = tmp_path / "src"
    src.mkdir()
    (src / "S001R01.edf").symlink_to(shared_data / "eegmmidb" / "S001" / "S001R01.edf")
    prepare_store(get_recipe("eegmmidb"), source=src, out=tmp_path / "mm", progress=False)
    with pytest.raises(ValueError, match="window lengths"):
        WindowDataset([eegmat_store, tmp_path / "mm"])
