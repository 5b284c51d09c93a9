"""PyTorch datasets and loaders over one or many window stores, batched by montage.

Every batch holds windows of one montage (same channels, same positions), so datasets with different channel
counts can be mixed in pretraining. Shuffling is deterministic given ``seed`` and the epoch
(:meth:`MontageBatchSampler.set_epoch`); with ``rank``/``world_size`` the batches are dealt to ranks so that
ranks never overlap and every rank gets the same number of batches.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from neuript.data.preprocess import alaw
from neuript.data.store import WindowStore

__all__ = ["WindowDataset", "MontageBatchSampler", "MontageCollate", "make_loader", "dataset_options", "GAIN_WINDOWS"]

#: windows a dataset reads to set its pre-emphasis gain
GAIN_WINDOWS = 512


def dataset_options(cfg) -> dict[str, Any]:
    """The :class:`WindowDataset` options (alignment, pre-emphasis) of a fine-tuning configuration: a
    ``FinetuneConfig`` or its ``to_dict()`` (a run's ``run.json``)."""
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    return dict(align=get("align", "none"), align_by=get("align_by", "subject"),
                preemphasis=float(get("preemphasis", 0.0) or 0.0))


class WindowDataset(torch.utils.data.Dataset):
    """Windows of one or many stores (optionally one split), companded on the fly.

    Parameters
    ----------
    stores : WindowStore, path, or a sequence of them
    split : str or sequence of str, optional
        Keep only these splits (``"train"``, ``"val"``, ``"test"``, ``"pretrain"``); None keeps all.
    transform : {"alaw", None} or callable, default "alaw"
        ``"alaw"``: A-law companding (A = 0.25, spec §1) of the µV signal; None: raw µV; a callable gets and
        returns a float32 numpy array (C, T).
    alaw_A : float
        Companding parameter.
    align : {"none", "channel", "euclidean"}
        Label-free per-group alignment before the transform (:mod:`neuript.data.align`): each subject's (or
        recording's) windows *in this dataset* are standardised per channel or Euclidean-aligned with a transform
        fitted on them. ``"none"`` is the paper's protocol.
    align_by : {"subject", "recording"}
        The group of the alignment.
    align_scale_uv : float
        Aligned signals (unit variance) are scaled to this many µV before companding.
    preemphasis : float
        Pre-emphasis coefficient (:func:`neuript.data.preprocess.preemphasis`), applied after the alignment and
        before the transform; 0 (default, the paper's input) leaves the signal as it is.
    preemphasis_gain : float, optional
        Scale of the pre-emphasised signal; ``None``: :func:`~neuript.data.preprocess.preemphasis_gain` of (up
        to :data:`GAIN_WINDOWS` evenly spaced) windows of this dataset. Give the training data's gain to
        validation and test data.

    Items are ``dict(x=Tensor (C, T) float32, label=int, montage=str, index=int)``; ``index`` is the item's
    position in this dataset.
    """

    def __init__(self, stores, split: str | Sequence[str] | None = None, transform: str | Callable | None = "alaw",
                 *, alaw_A: float = 0.25, align: str = "none", align_by: str = "subject",
                 align_scale_uv: float = 20.0, preemphasis: float = 0.0, preemphasis_gain: float | None = None):
        if isinstance(stores, (str, os.PathLike, WindowStore)):
            stores = [stores]
        self.stores: list[WindowStore] = [s if isinstance(s, WindowStore) else WindowStore.open(s) for s in stores]
        if not self.stores:
            raise ValueError("WindowDataset needs at least one store")
        n_times = {s.n_times for s in self.stores}
        if len(n_times) > 1:
            raise ValueError(f"stores have different window lengths {sorted(n_times)} samples; "
                             "mix only stores prepared with the same window_s and sfreq")
        if transform not in ("alaw", None) and not callable(transform):
            raise ValueError(f"transform must be 'alaw', None or a callable, got {transform!r}")
        self.transform = transform
        self.alaw_A = alaw_A
        splits = [split] if isinstance(split, str) else (list(split) if split is not None else None)
        store_idx, local_idx, montages, labels = [], [], [], []
        self._montages: dict[str, dict[str, Any]] = {}
        for k, st in enumerate(self.stores):
            w = st.windows
            mask = np.ones(len(w), bool) if splits is None else w["split"].isin(splits).to_numpy()
            idx = np.flatnonzero(mask)
            store_idx.append(np.full(len(idx), k, np.int64))
            local_idx.append(idx)
            montages.append(w["montage"].to_numpy()[idx])
            labels.append(w["label"].to_numpy()[idx])
            for key, (chs, pos) in st.montages().items():
                if key in self._montages:
                    if self._montages[key]["ch_names"] != chs:
                        raise ValueError(f"montage key {key!r} has different channels in {st.path}")
                    continue
                self._montages[key] = {"ch_names": list(chs), "positions": np.asarray(pos, np.float64)}
        self._store = np.concatenate(store_idx)
        self._local = np.concatenate(local_idx)
        self.montage = np.concatenate(montages).astype(object) if montages else np.empty(0, object)
        self.labels = np.concatenate(labels).astype(np.int64)
        from neuript.data.align import ALIGN_BY, ALIGNMENTS
        from neuript.runtime import check_choice

        check_choice("align", align, ALIGNMENTS)
        check_choice("align_by", align_by, ALIGN_BY)
        self.align, self.align_by, self.align_scale_uv = align, align_by, float(align_scale_uv)
        self._align_group = None
        self._align_transforms: dict[str, tuple] = {}
        if align != "none" and len(self._local):
            self._fit_alignment()
        if not 0.0 <= float(preemphasis) <= 1.0:
            raise ValueError(f"preemphasis must lie in [0, 1], got {preemphasis}")
        self.preemphasis, self.preemphasis_gain = float(preemphasis), 1.0
        if self.preemphasis:
            if preemphasis_gain is not None:
                self.preemphasis_gain = float(preemphasis_gain)
            elif len(self._local):
                from neuript.data.preprocess import preemphasis_gain as gain_of

                ids = np.unique(np.linspace(0, len(self) - 1, min(len(self), GAIN_WINDOWS)).astype(np.int64))
                x = np.stack([item["x"].numpy() for item in self._read(ids, transform=False, filtered=False)])
                self.preemphasis_gain = gain_of(x, self.preemphasis)
        if splits is not None and len(self._local) == 0:
            import warnings

            warnings.warn(f"WindowDataset: no windows of split(s) {splits} in {[str(s.path) for s in self.stores]}",
                          UserWarning, stacklevel=2)

    def __len__(self) -> int:
        return len(self._local)

    def _fit_alignment(self) -> None:
        """One transform per (store, subject or recording, montage), from this dataset's windows of it."""
        from neuript.data.align import fit_transform

        keys = self.group_keys(self.align_by)
        self._align_group = keys
        for key in np.unique(keys):
            sel = np.flatnonzero(keys == key)
            x = self.stores[int(self._store[sel[0]])].read(self._local[sel])
            self._align_transforms[key] = fit_transform(x, self.align)

    def group_keys(self, by: str) -> np.ndarray:
        """One key per item: its store, dataset, subject (``by="subject"``) or recording (``by="recording"``) and
        montage — the group a per-subject transform (alignment, feature normalisation) is fitted on."""
        if by not in ("subject", "recording"):
            raise ValueError(f"groups are 'subject' or 'recording', got {by!r}")
        w = self.windows
        if len(w) == 0:
            return np.zeros(0, dtype=object)
        return (w["store"].astype(str) + "|" + w["dataset"].astype(str) + "|" + w[by].astype(str) + "|"
                + w["montage"].astype(str)).to_numpy()

    @property
    def windows(self):
        """Per-item window table (pandas DataFrame, row ``i`` = item ``i``): the stores' columns (``dataset,
        subject, session, recording, start, label, split, montage, ...``) plus ``store`` (index into
        :attr:`stores`)."""
        if getattr(self, "_windows", None) is None:
            import pandas as pd

            parts = []
            for k, st in enumerate(self.stores):
                sel = self._local[self._store == k]
                t = st.windows.iloc[sel].copy()
                t["store"] = k
                parts.append(t)
            self._windows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        return self._windows

    def select(self, indices: Sequence[int] | np.ndarray) -> "WindowDataset":
        """A view of some of the items (same stores, transform and montages), e.g. a held-out part.

        Items keep their dataset order (``indices`` are sorted), so :attr:`windows` stays aligned.
        """
        import copy

        idx = np.unique(np.asarray(indices, dtype=np.int64))
        if len(idx) and (idx[0] < 0 or idx[-1] >= len(self)):
            raise IndexError(f"indices outside 0..{len(self) - 1}")
        new = copy.copy(self)
        new._store, new._local = self._store[idx], self._local[idx]
        new.montage, new.labels = self.montage[idx], self.labels[idx]
        new._align_group = self._align_group[idx] if self._align_group is not None else None
        new._windows = None
        return new

    def montage_info(self, montage: str) -> dict[str, Any]:
        """``dict(ch_names=list[str], positions=np.ndarray (C, 3))`` of a montage key."""
        if montage not in self._montages:
            raise KeyError(f"unknown montage {montage!r}; this dataset has {sorted(self._montages)}")
        d = self._montages[montage]
        return {"ch_names": list(d["ch_names"]), "positions": d["positions"].copy()}

    @property
    def montages(self) -> list[str]:
        return sorted(set(self.montage.tolist()))

    @property
    def n_times(self) -> int:
        return self.stores[0].n_times

    @property
    def sfreq(self) -> float:
        return self.stores[0].sfreq

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if self.transform == "alaw":
            return alaw(x, A=self.alaw_A)
        if callable(self.transform):
            return np.asarray(self.transform(x), dtype=np.float32)
        return x

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([int(i)])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Batched fetch (used by the DataLoader): one read per store instead of one per window."""
        return self._read(indices)

    def _read(self, indices: Sequence[int], *, transform: bool = True, filtered: bool = True) -> list[dict[str, Any]]:
        """Items of ``indices``: aligned, then (``filtered``) pre-emphasised, then (``transform``) companded."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for dataset of {len(self)} windows")
        idx = idx % max(len(self), 1)
        out: list[dict[str, Any] | None] = [None] * len(idx)
        stores = self._store[idx]
        for s in np.unique(stores):
            sel = np.flatnonzero(stores == s)
            # group further by montage (store.read needs one shape)
            mons = self.montage[idx[sel]]
            for m in np.unique(mons):
                sub = sel[mons == m]
                x = self.stores[int(s)].read(self._local[idx[sub]])
                if self._align_group is not None:
                    from neuript.data.align import apply_group_transforms

                    x = apply_group_transforms(x, self._align_group[idx[sub]], self._align_transforms,
                                               scale_uv=self.align_scale_uv)
                if self.preemphasis and filtered:
                    from neuript.data.preprocess import preemphasis

                    x = preemphasis(x, self.preemphasis, self.preemphasis_gain)
                if transform:
                    x = self._apply(x)
                for j, k in enumerate(sub):
                    out[k] = {"x": torch.from_numpy(np.ascontiguousarray(x[j], dtype=np.float32)),
                              "label": int(self.labels[idx[k]]), "montage": str(m), "index": int(idx[k])}
        return out  # type: ignore[return-value]


class MontageBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices that share one montage; deterministic per ``(seed, epoch)``; DDP-aware.

    Parameters
    ----------
    montages : sequence of str
        Montage key of every dataset item (``WindowDataset.montage``).
    batch_size : int
    shuffle : bool
        Shuffle within each montage and shuffle the order of batches (seeded by ``seed`` and the epoch).
    seed : int
    drop_last : bool
        Drop each montage's last incomplete batch.
    rank, world_size : int
        Distributed data parallel: rank ``r`` takes batches ``r, r + w, r + 2w, ...``. When the number of
        batches is not a multiple of ``world_size``, the first batches are repeated so every rank gets the same
        count (``drop_last=False``), or the surplus batches are dropped (``drop_last=True``).
    """

    def __init__(self, montages: Sequence[str], *, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1):
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.montages = np.asarray(montages, dtype=object)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle deterministically for ``epoch`` (call before each epoch, same value on every rank)."""
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        batches: list[list[int]] = []
        for m in sorted(set(self.montages.tolist())):
            idx = np.flatnonzero(self.montages == m)
            if self.shuffle:
                idx = rng.permutation(idx)
            for k in range(0, len(idx), self.batch_size):
                b = idx[k:k + self.batch_size]
                if len(b) < self.batch_size and self.drop_last:
                    continue
                batches.append(b.tolist())
        if self.shuffle:
            order = rng.permutation(len(batches))
            batches = [batches[i] for i in order]
        return batches

    def _rank_batches(self) -> list[list[int]]:
        batches = self._all_batches()
        w = self.world_size
        if w > 1 and len(batches) % w:
            if self.drop_last:
                batches = batches[: len(batches) - len(batches) % w]
            elif batches:
                pad = w - len(batches) % w
                batches = batches + [batches[i % len(batches)] for i in range(pad)]
        return batches[self.rank::w]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._rank_batches())

    def __len__(self) -> int:
        return len(self._rank_batches())


class MontageCollate:
    """Collate items of one montage into ``dict(x, label, montage, positions, ch_names, index)``."""

    def __init__(self, dataset: WindowDataset):
        self._info = {m: dataset.montage_info(m) for m in dataset.montages}

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        mons = {it["montage"] for it in items}
        if len(mons) != 1:
            raise ValueError(f"a batch mixes montages {sorted(mons)}; use MontageBatchSampler")
        m = mons.pop()
        info = self._info[m]
        return {
            "x": torch.stack([it["x"] for it in items]),
            "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
            "montage": m,
            "positions": torch.as_tensor(info["positions"], dtype=torch.float32),
            "ch_names": list(info["ch_names"]),
            "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        }


def _worker_init(worker_id: int) -> None:  # pragma: no cover - runs in worker processes
    info = torch.utils.data.get_worker_info()
    seed = (info.seed if info is not None else 0) % 2**32
    np.random.seed(seed)
    torch.set_num_threads(1)


def make_loader(dataset: WindowDataset, *, batch_size: int, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                pin_memory: bool = False, persistent_workers: bool | None = None,
                prefetch_factor: int | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader whose every batch holds one montage (see :class:`MontageBatchSampler`).

    Parameters
    ----------
    dataset : WindowDataset
    batch_size : int
    shuffle : bool
    seed : int
        Shuffling seed; call ``loader.batch_sampler.set_epoch(epoch)`` each epoch.
    num_workers : int
        Worker processes reading windows (memmaps are reopened in each worker).
    drop_last : bool
    rank, world_size : int
        For DistributedDataParallel: disjoint batches, equal batch counts on every rank.
    pin_memory, persistent_workers, prefetch_factor
        Passed to :class:`torch.utils.data.DataLoader`.

    Returns
    -------
    torch.utils.data.DataLoader
        Batches: ``dict(x=(B, C, T), label=(B,), montage=str, positions=(C, 3), ch_names=list, index=(B,))``.
    """
    sampler = MontageBatchSampler(dataset.montage, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                  drop_last=drop_last, rank=rank, world_size=world_size)
    kw: dict[str, Any] = {}
    if num_workers > 0:
        kw["persistent_workers"] = bool(persistent_workers) if persistent_workers is not None else False
        if prefetch_factor is not None:
            kw["prefetch_factor"] = prefetch_factor
        kw["worker_init_fn"] = _worker_init
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=MontageCollate(dataset),
                                       num_workers=num_workers, pin_memory=pin_memory, generator=g, **kw)
