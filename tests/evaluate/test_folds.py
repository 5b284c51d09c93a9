"""Subject-wise folds: deterministic, subject-disjoint, every subject held out once, test split never used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuript.evaluate.folds import (
    Fold,
    assign_folds,
    inner_validation,
    make_folds,
    parse_cv,
    pool_mask,
    subject_keys,
)


def _table(counts: dict[str, int], *, split_of=lambda s: "train", dataset="ds") -> pd.DataFrame:
    rows = []
    for s, n in counts.items():
        for i in range(n):
            rows.append({"dataset": dataset, "subject": s, "label": i % 2, "split": split_of(s)})
    return pd.DataFrame(rows)


def test_parse_cv():
    assert parse_cv("loso") == ("loso", None) and parse_cv("KFold:5") == ("kfold", 5)
    for bad in ("kfold", "kfold:1", "kfold:x", "lopo", ""):
        with pytest.raises(ValueError, match="--cv must be"):
            parse_cv(bad)


def test_loso_holds_every_subject_out_exactly_once():
    table = _table({f"{i:02d}": 4 + i for i in range(6)})
    folds = make_folds(table, cv="loso")
    assert [f.test_subjects for f in folds] == [(f"{i:02d}",) for i in range(6)]
    for f in folds:
        assert set(f.test_subjects).isdisjoint(f.train_subjects)
        assert set(f.inner_train_subjects) | set(f.inner_val_subjects) == set(f.train_subjects)
        assert set(f.inner_train_subjects).isdisjoint(f.inner_val_subjects) and f.inner_val_subjects
    assert make_folds(table, cv="loso") == folds  # deterministic
    assert Fold.from_dict(folds[2].to_dict()) == folds[2]


def test_kfold_is_balanced_by_windows_deterministic_and_disjoint():
    counts = {"a": 50, "b": 10, "c": 10, "d": 10, "e": 10, "f": 10, "g": 40}
    held = assign_folds(list(counts), cv="kfold:3", n_windows=list(counts.values()))
    assert sorted(s for f in held for s in f) == sorted(counts)  # each subject in exactly one fold
    loads = [sum(counts[s] for s in f) for f in held]
    assert max(loads) - min(loads) <= 10
    # the input order does not matter
    assert assign_folds(list(counts)[::-1], cv="kfold:3", n_windows=list(counts.values())[::-1]) == held
    with pytest.raises(ValueError, match="at least 8 subjects"):
        assign_folds(list(counts), cv="kfold:8")


def test_inner_validation_comes_from_training_subjects_and_keeps_every_class():
    train, val = inner_validation(["s1", "s2", "s3", "s4", "s5"], val_fraction=0.4)
    assert len(val) == 2 and set(train) | set(val) == {"s1", "s2", "s3", "s4", "s5"}
    assert inner_validation(["s5", "s3", "s1", "s2", "s4"], val_fraction=0.4) == (train, val)
    # a subject holding the only windows of class 1 stays in training
    classes = {"s1": {0}, "s2": {0}, "s3": {0, 1}}
    for _ in range(3):
        tr, va = inner_validation(list(classes), val_fraction=0.3, classes_of=classes)
        assert "s3" in tr
    with pytest.raises(ValueError, match="inner validation"):
        inner_validation(["only"], val_fraction=0.2)


def test_pool_keeps_train_and_val_never_test_or_unlabelled():
    split = {"00": "train", "01": "train", "02": "val", "03": "test"}
    table = _table({s: 4 for s in split}, split_of=split.get)
    table.loc[0, "label"] = -1
    mask, what = pool_mask(table)
    assert set(table["subject"][mask]) == {"00", "01", "02"} and not mask[0]
    assert "'test' split is held back" in what
    folds = make_folds(table[mask], cv="loso")
    assert {s for f in folds for s in f.test_subjects} == {"00", "01", "02"}
    # no fixed split: every labelled window
    free = _table({"x": 3, "y": 3}, split_of=lambda s: "pretrain")
    mask, what = pool_mask(free)
    assert mask.all() and "no train/val/test split" in what


def test_subject_keys_name_the_dataset_only_when_needed():
    one = _table({"01": 2})
    assert list(subject_keys(one)) == ["01", "01"]
    two = pd.concat([one, _table({"01": 1, "02": 2}, dataset="other")], ignore_index=True)
    assert list(subject_keys(two)) == ["ds/01", "ds/01", "other/01", "other/02", "other/02"]
    assert len(make_folds(two, cv="loso")) == 3


def test_real_store_pool(stores):
    from neuript.evaluate.folds import fold_indices, load_pool

    pool, keys, _ = load_pool([str(stores["eegmat"])], transform=None)
    assert set(keys) == {"00", "01", "02", "28"} and (pool.labels >= 0).all()
    folds = make_folds(pool.windows, cv="kfold:2")
    idx = [fold_indices(keys, f.test_subjects) for f in folds]
    assert len(np.intersect1d(*idx)) == 0 and sum(map(len, idx)) == len(pool)
