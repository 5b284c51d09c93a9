"""Subject-wise cross-validation folds: leave-one-subject-out and K-fold, deterministic.

The folds are drawn from a *pool* of labelled windows (:func:`pool_mask`):

* stores with a fixed split (any window in ``train``, ``val`` or ``test``): the ``train`` and ``val`` windows.
  The ``test`` windows never enter a fold, so a recipe's test subjects stay untouched by cross-validation;
* stores without one (every window in another split, e.g. ``pretrain``): every labelled window.

A subject is ``dataset/subject`` (two datasets may both have a subject ``01``), shown as the bare subject id when
the pool holds one dataset. Every subject lies in exactly one fold:

``loso``
    one fold per subject, in sorted order;
``kfold:K``
    ``K`` folds balanced by window count: subjects by decreasing window count (ties: by id) each go to the fold
    with the fewest windows so far (ties: the lower fold), as scikit-learn's ``GroupKFold`` does.

Inside a fold the model never sees the held-out subjects: its early stopping needs an *inner* validation set,
taken from the fold's training subjects (:func:`inner_validation`): ``round(val_fraction * n)`` of them (at least
one, leaving at least one), first in the order of a SHA-1 hash of their ids (stable across runs and machines),
skipping a subject whose removal would leave a class without training windows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["Fold", "parse_cv", "pool_mask", "subject_keys", "assign_folds", "inner_validation", "make_folds",
           "load_pool", "fold_indices"]

_KFOLD = re.compile(r"^kfold:(\d+)$")


def parse_cv(cv: str) -> tuple[str, int | None]:
    """``"loso"`` → ``("loso", None)``, ``"kfold:5"`` → ``("kfold", 5)``; anything else is a ValueError."""
    text = str(cv).strip().lower()
    if text == "loso":
        return "loso", None
    m = _KFOLD.match(text)
    if m and int(m.group(1)) >= 2:
        return "kfold", int(m.group(1))
    raise ValueError(f"--cv must be 'loso' or 'kfold:K' with K >= 2 (e.g. kfold:5); got {cv!r}")


def subject_keys(windows: pd.DataFrame) -> np.ndarray:
    """The subject of every window: ``dataset/subject``, or the bare subject when there is one dataset."""
    subj = windows["subject"].astype(str)
    if windows["dataset"].nunique() <= 1:
        return subj.to_numpy()
    return (windows["dataset"].astype(str) + "/" + subj).to_numpy()


def pool_mask(windows: pd.DataFrame, *, train_split: str = "train", val_split: str = "val",
              test_split: str = "test") -> tuple[np.ndarray, str]:
    """Which windows cross-validation may use, and a sentence saying which (see the module docstring)."""
    split = windows["split"].astype(str)
    labelled = windows["label"].to_numpy() >= 0
    if split.isin([train_split, val_split, test_split]).any():
        mask = split.isin([train_split, val_split]).to_numpy() & labelled
        return mask, (f"the stores' {train_split!r} and {val_split!r} splits; their {test_split!r} split is "
                      "held back, never used")
    return labelled, "every labelled window (the stores define no train/val/test split)"


@dataclass(frozen=True)
class Fold:
    """One fold: the held-out subjects and the training subjects, split into inner training and validation."""

    index: int
    test_subjects: tuple[str, ...]
    train_subjects: tuple[str, ...]
    inner_train_subjects: tuple[str, ...]
    inner_val_subjects: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"fold-{self.index:02d}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "test_subjects": list(self.test_subjects),
                "train_subjects": list(self.train_subjects),
                "inner_train_subjects": list(self.inner_train_subjects),
                "inner_val_subjects": list(self.inner_val_subjects)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fold":
        return cls(index=int(d["index"]), test_subjects=tuple(d["test_subjects"]),
                   train_subjects=tuple(d["train_subjects"]),
                   inner_train_subjects=tuple(d["inner_train_subjects"]),
                   inner_val_subjects=tuple(d["inner_val_subjects"]))


def assign_folds(subjects: Sequence[str], *, cv: str, n_windows: Sequence[int] | None = None) -> list[list[str]]:
    """The held-out subjects of every fold.

    Parameters
    ----------
    subjects
        The distinct subjects of the pool.
    cv
        ``"loso"`` or ``"kfold:K"``.
    n_windows
        Windows per subject (same order), for the balance of ``kfold``; default: one each.

    Returns
    -------
    list of list of str
        Sorted subjects of each fold; every subject in exactly one fold.
    """
    scheme, k = parse_cv(cv)
    subjects = [str(s) for s in subjects]
    if len(set(subjects)) != len(subjects):
        raise ValueError("subjects must be distinct")
    if scheme == "loso":
        return [[s] for s in sorted(subjects)]
    if k > len(subjects):
        raise ValueError(f"--cv kfold:{k} needs at least {k} subjects; the pool has {len(subjects)}")
    counts = dict(zip(subjects, n_windows if n_windows is not None else [1] * len(subjects)))
    folds: list[list[str]] = [[] for _ in range(k)]
    load = [0] * k
    for s in sorted(subjects, key=lambda s: (-int(counts[s]), s)):
        f = min(range(k), key=lambda i: (load[i], i))
        folds[f].append(s)
        load[f] += int(counts[s])
    return [sorted(f) for f in folds]


def _hash(subject: str) -> str:
    return hashlib.sha1(subject.encode()).hexdigest()


def inner_validation(train_subjects: Sequence[str], *, val_fraction: float,
                     classes_of: dict[str, set[int]] | None = None) -> tuple[list[str], list[str]]:
    """Split a fold's training subjects into (inner training, inner validation) subjects (module docstring)."""
    subjects = sorted(str(s) for s in train_subjects)
    if len(subjects) < 2:
        raise ValueError(f"a fold has {len(subjects)} training subject(s); early stopping needs an inner "
                         "validation subject besides the training ones (use fewer folds or more subjects)")
    if not 0 < val_fraction < 1:
        raise ValueError(f"--cv-val-fraction must be in (0, 1); got {val_fraction}")
    n_val = min(len(subjects) - 1, max(1, round(val_fraction * len(subjects))))
    all_classes = set().union(*(classes_of[s] for s in subjects)) if classes_of else set()
    val: list[str] = []
    for s in sorted(subjects, key=_hash):
        if len(val) == n_val:
            break
        if classes_of:
            rest = [t for t in subjects if t not in val and t != s]
            if set().union(*(classes_of[t] for t in rest)) != all_classes:
                continue  # holding s out would leave a class without training windows
        val.append(s)
    if not val:
        raise ValueError("no training subject can be held out for inner validation without leaving a class "
                         "without training windows")
    return [s for s in subjects if s not in val], sorted(val)


def make_folds(windows: pd.DataFrame, *, cv: str, val_fraction: float = 0.2) -> list[Fold]:
    """Folds of a pool's window table (the rows :func:`pool_mask` keeps)."""
    if len(windows) == 0:
        raise ValueError("cross-validation found no labelled windows to make folds from")
    keys = subject_keys(windows)
    labels = windows["label"].to_numpy()
    subjects, counts = np.unique(keys, return_counts=True)
    classes_of = {s: set(np.unique(labels[keys == s]).tolist()) for s in subjects}
    out = []
    for i, held in enumerate(assign_folds(subjects.tolist(), cv=cv, n_windows=counts.tolist())):
        train = sorted(set(subjects.tolist()) - set(held))
        inner_train, inner_val = inner_validation(train, val_fraction=val_fraction, classes_of=classes_of)
        out.append(Fold(index=i, test_subjects=tuple(held), train_subjects=tuple(train),
                        inner_train_subjects=tuple(inner_train), inner_val_subjects=tuple(inner_val)))
    return out


def load_pool(stores: Sequence[str], *, train_split: str = "train", val_split: str = "val",
              test_split: str = "test", **dataset_options: Any):
    """The pool of ``stores`` as a :class:`~neuript.data.loader.WindowDataset` (``dataset_options``: its
    ``transform``, ``align``, ...), the subject of each of its items, and the sentence of :func:`pool_mask`."""
    import warnings

    from neuript.data.loader import WindowDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty split: reported below
        full = WindowDataset(list(stores), split=None, align="none", transform=None)
        mask, what = pool_mask(full.windows, train_split=train_split, val_split=val_split, test_split=test_split)
        splits = sorted(set(full.windows["split"].astype(str)[mask]))
        if not splits:
            raise ValueError(f"{list(stores)} hold no labelled windows outside the {test_split!r} split to "
                             "cross-validate on")
        ds = WindowDataset(list(stores), split=splits, **dataset_options)
    # the pool splits may hold unlabelled windows (a store without a fixed split): they are dropped here, after
    # the label-free alignment saw them
    ds = ds.select(np.flatnonzero(ds.labels >= 0))
    return ds, subject_keys(ds.windows), what


def fold_indices(keys: np.ndarray, subjects: Sequence[str]) -> np.ndarray:
    """Positions of the windows of ``subjects`` in a pool whose subjects are ``keys``."""
    return np.flatnonzero(np.isin(keys, list(subjects)))
