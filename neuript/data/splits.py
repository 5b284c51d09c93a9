"""Subject-wise train/val/test splits from a seed, usable by any recipe.

:func:`subject_splits` assigns every subject to exactly one split. The assignment depends only on the set of
subject ids, the fractions and the seed: subjects are ordered by a SHA-256 of ``"<seed>:<subject>"`` (stable
across platforms, Python and numpy versions, unlike a random generator's stream), the first ``round(test * n)``
go to ``test``, the next ``round(val * n)`` to ``val``, the rest to ``train``. A split asked for with a fraction
above zero gets at least one subject whenever ``train`` keeps one (priority train, then val, which fine-tuning
needs for early stopping, then test).

:func:`with_subject_split` wraps any recipe so that its recordings get this split instead of the recipe's own;
the assignment is returned by the wrapper's ``describe()`` under ``"splits"`` and so is written to the store's
``manifest.json`` (shown by ``neuript info``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from typing import Any, Iterable, Sequence

__all__ = ["SPLITS", "DEFAULT_VAL", "DEFAULT_TEST", "DEFAULT_SEED", "subject_splits", "apply_subject_split",
           "split_summary", "with_subject_split", "SubjectSplitRecipe"]

#: split names in the order :func:`subject_splits` fills them
SPLITS = ("train", "val", "test")
#: default fractions of subjects in val and test, and default seed (``--split-by subject`` without ``--val`` ...)
DEFAULT_VAL, DEFAULT_TEST, DEFAULT_SEED = 0.15, 0.15, 0


def _rank(seed: int, subject: str) -> str:
    return hashlib.sha256(f"{int(seed)}:{subject}".encode()).hexdigest()


def _check_fractions(val: float, test: float) -> None:
    for name, f in (("val", val), ("test", test)):
        if not (isinstance(f, (int, float)) and 0.0 <= float(f) < 1.0):
            raise ValueError(f"split fraction {name}={f!r} must be a number in [0, 1), e.g. --{name} 0.15")
    if float(val) + float(test) >= 1.0:
        raise ValueError(f"val + test = {val} + {test} leaves no subjects for training; use smaller fractions")


def subject_splits(subjects: Iterable[str], *, val: float, test: float, seed: int) -> dict[str, str]:
    """Deterministic subject-wise split.

    Parameters
    ----------
    subjects : iterable of str
        Subject ids (repeats are fine: one entry per recording).
    val, test : float
        Fractions of the subjects in the validation and test splits (``0 <= val + test < 1``).
    seed : int
        Another seed gives another assignment; the same seed and subjects always give the same one.

    Returns
    -------
    dict
        subject → ``"train"`` / ``"val"`` / ``"test"``.
    """
    _check_fractions(val, test)
    uniq = sorted({str(s) for s in subjects})
    n = len(uniq)
    # round half up (Python's round() is half-to-even, which surprises people reading the counts)
    n_test, n_val = int(math.floor(test * n + 0.5)), int(math.floor(val * n + 0.5))
    if val > 0 and n_val == 0:
        n_val = 1
    if test > 0 and n_test == 0:
        n_test = 1
    # train keeps at least one subject: give back test subjects first, then val ones
    while n_test + n_val > max(n - 1, 0) and n_test > 0:
        n_test -= 1
    while n_test + n_val > max(n - 1, 0) and n_val > 0:
        n_val -= 1
    order = sorted(uniq, key=lambda s: (_rank(seed, s), s))
    out = {s: "test" for s in order[:n_test]}
    out.update({s: "val" for s in order[n_test:n_test + n_val]})
    out.update({s: "train" for s in order[n_test + n_val:]})
    empty = [name for name, f in (("val", val), ("test", test)) if f > 0 and name not in out.values()]
    if empty:
        warnings.warn(f"only {n} subject(s): split(s) {empty} are empty (every split needs its own subject)",
                      UserWarning, stacklevel=2)
    return out


def split_summary(recordings: Sequence, *, by: str, **settings: Any) -> dict[str, Any]:
    """JSON description of the split of ``recordings`` for the store: how (``by`` and ``settings``) and which
    subjects are in each split (sorted)."""
    subj: dict[str, set[str]] = {}
    for r in recordings:
        subj.setdefault(r.split, set()).add(str(r.subject))
    return {"by": by, **settings, "subjects": {k: sorted(v) for k, v in sorted(subj.items())}}


def apply_subject_split(recordings: Sequence, *, val: float, test: float, seed: int):
    """Recordings with their ``split`` replaced by :func:`subject_splits`, and the :func:`split_summary`."""
    assign = subject_splits([r.subject for r in recordings], val=val, test=test, seed=seed)
    recs = [dataclasses.replace(r, split=assign[str(r.subject)]) for r in recordings]
    return recs, split_summary(recs, by="subject", seed=int(seed), val=float(val), test=float(test))


class SubjectSplitRecipe:
    """A recipe whose recordings are split by subject (:func:`subject_splits`) instead of the recipe's own rule.

    Behaves like the wrapped recipe for :func:`neuript.data.prepare.prepare_store` (``name``, ``opts``,
    ``config``, ``events``): worker processes rebuild the wrapped recipe from ``name`` and ``opts`` and only
    need its events, since every recording carries its split. ``describe()`` adds the split settings to the
    options (so a store built with another split is not resumed by mistake) and the assignment under
    ``"splits"``.
    """

    def __init__(self, recipe, *, val: float = DEFAULT_VAL, test: float = DEFAULT_TEST, seed: int = DEFAULT_SEED):
        _check_fractions(val, test)
        self.recipe, self.val, self.test, self.seed = recipe, float(val), float(test), int(seed)
        self._summary: dict[str, Any] | None = None

    def __getattr__(self, item: str) -> Any:  # name, opts, options, label_names, ... of the wrapped recipe
        if item == "recipe":
            raise AttributeError(item)
        return getattr(self.recipe, item)

    def config(self):
        return self.recipe.config()

    def recordings(self, source):
        recs, self._summary = apply_subject_split(self.recipe.recordings(source), val=self.val, test=self.test,
                                                  seed=self.seed)
        return recs

    def events(self, raw, rec):
        return self.recipe.events(raw, rec)

    def describe(self) -> dict[str, Any]:
        d = self.recipe.describe()
        d["options"] = {**d["options"], "split_by": "subject", "val": self.val, "test": self.test,
                        "seed": self.seed}
        if self._summary is not None:
            d["splits"] = self._summary
        return d


def with_subject_split(recipe, *, val: float = DEFAULT_VAL, test: float = DEFAULT_TEST,
                       seed: int = DEFAULT_SEED) -> SubjectSplitRecipe:
    """Wrap ``recipe`` so that its recordings are split by subject with ``seed`` (see :func:`subject_splits`).

    Example
    -------
    >>> r = with_subject_split(get_recipe("eegmat"), val=0.15, test=0.15, seed=1)   # doctest: +SKIP
    >>> prepare_store(r, source="/data/eegmat", out="stores/eegmat_s1")             # doctest: +SKIP
    """
    return SubjectSplitRecipe(recipe, val=val, test=test, seed=seed)
