"""Classical baselines on window stores, through the fine-tuning protocols (``neuript baseline``).

:func:`run_store_baseline` runs :func:`neuript.evaluate.baselines.run_baseline` on the windows of one or many
stores, in microvolts (before companding), either

* on the **fixed split**: fitted on the ``train`` split, scored on ``test`` (or ``val`` when ``test`` is empty, as
  ``neuript evaluate`` does, with the same note), or
* through the **folds** of ``--cv loso | kfold:K`` (:mod:`neuript.evaluate.folds`, the very folds of
  ``neuript finetune --cv``): fitted on each fold's training subjects (inner training and inner validation together:
  the baseline has no early stopping, its ``C`` is chosen by ``GroupKFold`` over those subjects), scored on its
  held-out subjects.

The result (a JSON document) carries what ``neuript evaluate`` needs to add it as a row of a run's report, and to
check that it was evaluated on the same windows (:func:`protocol_mismatch`).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

__all__ = ["run_store_baseline", "baseline_row", "protocol_mismatch", "format_baseline_table", "baseline_filename"]


def baseline_filename(method: str, align: str) -> str:
    """``baseline-<method>-<align>.json``: the name ``neuript evaluate`` looks for in a run directory."""
    return f"baseline-{method}-{align}.json"


def _read_windows(ds, chunk: int = 256) -> np.ndarray:
    """Every item of a µV :class:`~neuript.data.loader.WindowDataset` (``transform=None``) as (n, C, T) float32."""
    parts = []
    for start in range(0, len(ds), chunk):
        items = ds.__getitems__(list(range(start, min(start + chunk, len(ds)))))
        parts.append(np.stack([it["x"].numpy() for it in items]))
    return np.concatenate(parts)


def _check_dataset(ds, what: str) -> None:
    if len(ds) == 0:
        raise ValueError(f"{what} has no windows")
    if (ds.labels < 0).any():
        raise ValueError(f"{int((ds.labels < 0).sum())} windows of {what} have no label (-1); the baselines need "
                         "a labelled store")
    if len(ds.montages) != 1:
        raise ValueError(f"{what} mixes {len(ds.montages)} montages ({ds.montages}); a baseline needs one channel "
                         "layout")


def _label_names(ds) -> dict[int, str]:
    names: dict[int, str] = {}
    for st in ds.stores:
        names.update(st.label_names)
    n = max(len(names), int(ds.labels.max()) + 1)
    return {i: names.get(i, str(i)) for i in range(n)}


def _chance(labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    return {"balanced_accuracy": 1.0 / n_classes, "auroc": 0.5 if n_classes == 2 else None,
            "auc_pr": float((labels == 1).mean()) if n_classes == 2 else None}


def _subject_metrics(labels, probs, subjects, *, n_classes: int) -> dict[str, dict[str, Any]]:
    """Per-subject metrics (as ``neuript evaluate`` reports them), aggregated over one value each."""
    from neuript.evaluate.metrics import aggregate, compute_metrics

    out = {}
    for subject in sorted(set(subjects)):
        sel = subjects == subject
        with warnings.catch_warnings():  # a subject with one class has no AUROC: reported as undefined
            warnings.simplefilter("ignore")
            m = compute_metrics(labels[sel], probs[sel], n_classes=n_classes)
            m = {k: v for k, v in m.items() if k in ("balanced_accuracy", "auroc", "accuracy", "cohen_kappa")}
            m["n_windows"] = int(sel.sum())
            out[str(subject)] = aggregate([m])
    return out


def run_store_baseline(
    stores: Sequence[str],
    *,
    method: str,
    align: str = "none",
    C: float | str = "cv",
    cv: str | None = None,
    split: str | None = None,
    seeds: Sequence[int] = (0,),
    cv_val_fraction: float = 0.2,
    train_split: str = "train",
    val_split: str = "val",
    test_split: str = "test",
) -> dict[str, Any]:
    """Fit and score a classical baseline on ``stores`` by the fixed split or by subject-wise folds.

    Parameters
    ----------
    stores
        Labelled window stores of one montage.
    method
        ``"bandpower"`` or ``"riemann"`` (:data:`neuript.evaluate.baselines.BASELINES`).
    align
        ``"none"``, ``"channel"``, ``"euclidean"`` (per-subject signal alignment) or ``"features"`` (per-subject
        feature standardisation); label-free and transductive on the scored subjects.
    C
        Inverse regularisation of the logistic regression, or ``"cv"``: chosen by ``GroupKFold`` over the
        training subjects (never the scored ones).
    cv
        ``None`` (fixed split), ``"loso"`` or ``"kfold:K"``.
    split
        Fixed split only: the split to score (default ``test``, or ``val`` when ``test`` is empty).
    seeds
        Seeds of the classifier (the baselines are deterministic; kept for the report's layout).
    cv_val_fraction
        The inner-validation share of :func:`neuript.evaluate.folds.make_folds`, so that the folds are recorded
        exactly as ``neuript finetune --cv`` records them (it does not change the held-out subjects).
    train_split, val_split, test_split
        The stores' split names.

    Returns
    -------
    dict
        JSON-ready: ``per_seed`` (``seed<k>``, or ``fold-XX/seed<k>`` under ``cv``), ``aggregate``, ``per_subject``,
        ``per_fold`` and ``pooled`` (``cv``), the evaluated subjects and the protocol.
    """
    from neuript.evaluate.baselines import BASELINE_ALIGNMENTS, available_baselines, run_baseline
    from neuript.evaluate.folds import fold_indices, load_pool, make_folds, parse_cv, subject_keys
    from neuript.evaluate.metrics import aggregate, compute_metrics
    from neuript.runtime import check_choice, versions

    check_choice("method", method, available_baselines())
    check_choice("align", align, BASELINE_ALIGNMENTS)
    if not (C == "cv" or (isinstance(C, (int, float)) and C > 0)):
        raise ValueError(f"--C must be 'cv' or a positive number; got {C!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("give at least one seed")
    stores = [str(s) for s in stores]
    if not stores:
        raise ValueError("give at least one store")
    options = dict(align=align, C=C, seeds=seeds)
    doc: dict[str, Any] = {"kind": "baseline", "method": method, "model": f"baseline:{method}", "align": align,
                           "C": C, "stores": stores, "note": None}
    if cv is None:
        from neuript.data.loader import WindowDataset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty split is reported below
            train = WindowDataset(stores, split=train_split, transform=None)
            _check_dataset(train, f"split {train_split!r} of {stores}")
            if split is None:
                split = test_split
                test = WindowDataset(stores, split=split, transform=None)
                if len(test) == 0:  # as `neuript evaluate` does
                    doc["note"] = (f"The {split!r} split is empty (its subjects are not in the source folder): "
                                   f"these are VALIDATION metrics ({val_split!r} split).")
                    split = val_split
                    test = WindowDataset(stores, split=split, transform=None)
            else:
                test = WindowDataset(stores, split=split, transform=None)
        _check_dataset(test, f"split {split!r} of {stores}")
        label_names = _label_names(train)
        n_classes = len(label_names)
        g_train, g_test = subject_keys(train.windows), subject_keys(test.windows)
        res = run_baseline(method, _read_windows(train), train.labels, _read_windows(test), test.labels,
                           sfreq=train.sfreq, n_classes=n_classes, seeds=seeds, groups_train=g_train,
                           groups_test=g_test, align=align, C=C)
        per_seed = {f"seed{s}": m for s, m in res["per_seed"].items()}
        labels = test.labels
        doc.update({"split": split, "cv": None, "C_chosen": res["provenance"]["C"],
                    "cv_balanced_accuracy": res["provenance"]["cv_balanced_accuracy"]})
        per_subject = _subject_metrics(labels, res["proba"], g_test, n_classes=n_classes)
    else:
        parse_cv(cv)  # a bad --cv fails before any data is read
        pool, keys, what = load_pool(stores, train_split=train_split, val_split=val_split, test_split=test_split,
                                     transform=None)
        _check_dataset(pool, f"the cross-validation pool of {stores}")
        folds = make_folds(pool.windows, cv=cv, val_fraction=cv_val_fraction)
        label_names = _label_names(pool)
        n_classes = len(label_names)
        x, y = _read_windows(pool), pool.labels
        per_seed, per_fold, per_subject, folds_out = {}, {}, {}, []
        pooled_probs, pooled_labels = [], []
        for fold in folds:
            tr, te = fold_indices(keys, fold.train_subjects), fold_indices(keys, fold.test_subjects)
            res = run_baseline(method, x[tr], y[tr], x[te], y[te], sfreq=pool.sfreq, n_classes=n_classes,
                               seeds=seeds, groups_train=keys[tr], groups_test=keys[te], align=align, C=C)
            for s, m in res["per_seed"].items():
                per_seed[f"{fold.name}/seed{s}"] = m
            per_fold[fold.name] = res["aggregate"]
            per_subject.update(_subject_metrics(y[te], res["proba"], keys[te], n_classes=n_classes))
            pooled_probs.append(res["proba"])
            pooled_labels.append(y[te])
            folds_out.append({**fold.to_dict(), "n_windows": int(len(te)), "C_chosen": res["provenance"]["C"]})
        labels = np.concatenate(pooled_labels)
        # deterministic: the last seed's probabilities are every seed's
        pooled = compute_metrics(labels, np.concatenate(pooled_probs), n_classes=n_classes)
        doc.update({"split": "held-out (cross-validation)",
                    "cv": {"scheme": cv, "n_folds": len(folds), "pool": what, "folds": folds_out},
                    "aggregate_over": "folds × seeds", "per_fold": per_fold,
                    "pooled": {"per_seed": {f"seed{s}": pooled for s in seeds},
                               "aggregate": aggregate([pooled] * len(seeds))}})
    doc.update({
        "n_windows": int(len(labels)),
        "class_counts": {label_names[c]: int((labels == c).sum()) for c in range(n_classes)},
        "label_names": label_names,
        "per_seed": per_seed,
        "aggregate": aggregate(list(per_seed.values())),
        "per_subject": dict(sorted(per_subject.items())),
        "n_subjects": len(per_subject),
        "evaluated_subjects": {s: int(m["n_windows"]["mean"]) for s, m in sorted(per_subject.items())},
        "chance": _chance(labels, n_classes),
        "protocol": _protocol_text(method, align, C, cv),
        "provenance": {"baseline": method, "options": options, "seeds": seeds, "stores": stores,
                       "versions": versions()},
    })
    return doc


def _protocol_text(method: str, align: str, C: Any, cv: str | None) -> str:
    how = {"none": "no alignment (paper protocol)", "features": "features standardised per subject (transductive)",
           "channel": "per-subject channel standardisation (transductive)",
           "euclidean": "per-subject Euclidean alignment (transductive)"}[align]
    c = "C chosen by GroupKFold over the training subjects" if C == "cv" else f"C = {C}"
    where = f"{cv} cross-validation" if cv else "fixed split"
    return f"{method} + logistic regression, {how}, {c}, {where}"


def baseline_row(doc: dict[str, Any]) -> dict[str, Any]:
    """The row a baseline result adds to a run's report."""
    align = doc.get("align", "none")
    label = f"{doc.get('method', doc.get('model', 'baseline'))} + LR"
    return {"label": label, "model": doc.get("model"), "align": align, "C": doc.get("C"),
            "protocol": doc.get("protocol"), "aggregate": doc.get("aggregate") or {},
            "pooled": (doc.get("pooled") or {}).get("aggregate")}


def protocol_mismatch(doc: dict[str, Any], results: dict[str, Any], *, windows: bool = True) -> str | None:
    """Why a baseline result ``doc`` was not evaluated like a run's ``results`` (None when it was): the same
    folds (held-out subjects of each) or the same split, and (``windows``) the same subjects and window counts."""
    if doc.get("kind") != "baseline":
        return "it is not a `neuript baseline` result"
    run_cv, b_cv = results.get("cv"), doc.get("cv")
    if bool(run_cv) != bool(b_cv):
        def what(c):
            return f"{c['scheme']} cross-validation" if c else "the fixed split"

        return f"the run used {what(run_cv)}, the baseline {what(b_cv)}"
    if run_cv:
        if run_cv["scheme"] != b_cv["scheme"]:
            return f"the run used --cv {run_cv['scheme']}, the baseline --cv {b_cv['scheme']}"
        if [f["test_subjects"] for f in run_cv["folds"]] != [f["test_subjects"] for f in b_cv["folds"]]:
            return "its folds hold out other subjects"
    elif "split" in results and doc.get("split") != results.get("split"):
        return f"the run was scored on the {results.get('split')!r} split, the baseline on {doc.get('split')!r}"
    if not windows:
        return None
    ours = {str(k): int(v) for k, v in (results.get("evaluated_subjects") or {}).items()}
    theirs = {str(k): int(v) for k, v in (doc.get("evaluated_subjects") or {}).items()}
    if ours != theirs:
        return "it was scored on other subjects or windows"
    return None


def format_baseline_table(doc: dict[str, Any], *, decimals: int = 1) -> str:
    """A plain-text (markdown) summary of :func:`run_store_baseline`'s result: overall, per fold, per subject."""
    from neuript.evaluate.metrics import METRIC_DISPLAY_NAMES, _ordered_metric_names, paper_metrics

    n_classes = len(doc["label_names"])
    names = list(paper_metrics(n_classes))

    def cell(a: dict[str, Any] | None, name: str) -> str:
        a = (a or {}).get(name) or {}
        mean, std = a.get("mean"), a.get("std")
        if mean is None or not np.isfinite(mean):
            return "n/a"
        spread = "" if int(a.get("n") or 0) < 2 or std is None or not np.isfinite(std) else f" ± {100 * std:.{decimals}f}"
        return f"{100 * mean:.{decimals}f}{spread}"

    def table(first: str, rows: list[tuple[str, tuple]], extra: Sequence[str] = (), *,
              names: Sequence[str] = names) -> list[str]:
        cols = [first, *extra, *(METRIC_DISPLAY_NAMES.get(n, n) for n in names)]
        out = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
        for label, (agg, more) in rows:
            out.append("| " + " | ".join([label, *more, *(cell(agg, n) for n in names)]) + " |")
        return out

    lines = [f"{doc['protocol']}", f"scored: {doc['split']}, {doc['n_windows']} windows, {doc['n_subjects']} "
             f"subjects (percent; mean ± std over {doc.get('aggregate_over', 'seeds')})"]
    if doc.get("note"):
        lines.append(f"note: {doc['note']}")
    lines.append("")
    rows = [("all", (doc["aggregate"], []))]
    if doc.get("pooled"):
        rows.append(("pooled", (doc["pooled"]["aggregate"], [])))
    lines += table("Result", rows)
    if doc.get("cv"):
        lines.append("")
        fold_rows = [(f["name"], (doc["per_fold"][f["name"]], [", ".join(f["test_subjects"]), f"{f['C_chosen']:.0e}"]))
                     for f in doc["cv"]["folds"]]
        lines += table("Fold", fold_rows, extra=["Held out", "C"])
    else:
        lines.append(f"\nC = {doc['C_chosen']:.0e}")
    lines.append("")
    subj = [(s, (m, [str(int(m["n_windows"]["mean"]))])) for s, m in doc["per_subject"].items()]
    subject_names = [n for n in _ordered_metric_names(list(next(iter(doc["per_subject"].values()))))
                     if n != "n_windows"]
    lines += table("Subject", subj, extra=["Windows"], names=subject_names)
    return "\n".join(lines)
