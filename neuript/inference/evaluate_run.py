"""Evaluate a fine-tuning run: every seed's best model on a split, metrics mean ± std, report and plots."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuript._atomic import atomic_path
from neuript.inference.artifacts import is_saved_model, load_classifier
from neuript.inference.predict import predict_dataset
from neuript.model.io import seed_model_dirs
from neuript.runtime import resolve_device

log = logging.getLogger(__name__)

__all__ = ["evaluate_run"]


def _seed_dirs(run: Path) -> list[Path]:
    dirs = [d.parent for d in seed_model_dirs(run) if is_saved_model(d)]
    if not dirs:
        raise FileNotFoundError(
            f"{run} holds no fine-tuned model (expected {run}/seed<k>/model). Run `neuript finetune` first."
        )
    return dirs


def evaluate_run(run: str | Path, *, split: str | None = None, stores: list[str] | None = None,
                 device: str = "auto", batch_size: int = 64, paper_reference: dict | None = None,
                 title: str | None = None) -> dict[str, Any]:
    """Evaluate every seed of a fine-tuning run and write ``report.json``, ``report.md`` and PNG plots.

    Parameters
    ----------
    run
        Directory written by :func:`neuript.train.finetune.finetune`.
    split
        Split to evaluate; default: the run's test split, or its validation split when the test split is empty
        (the report then says so).
    stores
        Stores to read the split from (default: the stores the run was trained on).
    """
    from neuript.data.loader import WindowDataset
    from neuript.evaluate.metrics import aggregate, collapse_warning, compute_metrics
    from neuript.evaluate.plots import plot_confusion_matrix, plot_roc
    from neuript.evaluate.report import write_report

    run = Path(run)
    meta = json.loads((run / "run.json").read_text())
    cfg = meta["config"]
    stores = stores or cfg["stores"]
    dev = resolve_device(device)
    align = dict(align=cfg.get("align", "none"), align_by=cfg.get("align_by", "subject"))
    protocol = ("paper protocol (no alignment)" if align["align"] == "none" else
                f"transductive per-{align['align_by']} alignment ({align['align']}), computed from the unlabeled "
                f"windows of each {align['align_by']} of the evaluated split")
    note = None
    if split is None:
        split = cfg.get("test_split", "test")
        ds = WindowDataset(stores, split=split, **align)
        if len(ds) == 0:
            note = (f"The {split!r} split is empty (its subjects are not in the source folder): "
                    f"these are VALIDATION metrics ({cfg.get('val_split', 'val')!r} split), which were also used "
                    "for early stopping and are therefore optimistic.")
            log.warning(note)
            split = cfg.get("val_split", "val")
            ds = WindowDataset(stores, split=split, **align)
    else:
        ds = WindowDataset(stores, split=split, **align)
    if len(ds) == 0:
        raise ValueError(f"split {split!r} of {stores} has no windows to evaluate")

    label_names: dict[int, str] = {int(k): v for k, v in meta["label_names"].items()}
    n_classes = len(label_names)
    class_names = [label_names[i] for i in range(n_classes)]
    per_seed: dict[str, dict[str, Any]] = {}
    subject_metrics: dict[str, list[dict[str, Any]]] = {}
    warnings_out: list[str] = []
    all_probs = []
    labels = None
    for seed_dir in _seed_dirs(run):
        model, _ = load_classifier(seed_dir / "model", device=dev)
        probs, labels, index = predict_dataset(model, ds, batch_size=batch_size, device=dev)
        metrics = compute_metrics(labels, probs, n_classes=n_classes)
        per_seed[seed_dir.name] = metrics
        all_probs.append(probs)
        collapsed = collapse_warning(probs.argmax(1), class_names)
        if collapsed:
            warnings_out.append(f"{seed_dir.name}: {collapsed}")
            log.warning("%s: %s", seed_dir.name, collapsed)
        subjects = ds.windows.iloc[index]["subject"].astype(str).to_numpy()
        for subject in sorted(set(subjects)):
            sel = subjects == subject
            with warnings.catch_warnings():  # a subject with one class has no AUROC: reported as undefined
                warnings.simplefilter("ignore")
                m = compute_metrics(labels[sel], probs[sel], n_classes=n_classes)
            m = {k: v for k, v in m.items() if k in ("balanced_accuracy", "auroc", "accuracy", "cohen_kappa")}
            m["n_windows"] = int(sel.sum())
            subject_metrics.setdefault(subject, []).append(m)
        table = ds.windows.iloc[index][["dataset", "subject", "session", "recording", "start", "label"]].copy()
        for c in range(n_classes):
            table[f"prob_{class_names[c]}"] = probs[:, c]
        table["predicted"] = [class_names[i] for i in probs.argmax(1)]
        with atomic_path(seed_dir / f"predictions_{split}.csv") as tmp:
            table.to_csv(tmp, index=False)

    results = {
        "split": split,
        "protocol": protocol,
        "note": note,
        "n_windows": int(len(ds)),
        "class_counts": {class_names[c]: int((labels == c).sum()) for c in range(n_classes)},
        "per_seed": per_seed,
        "aggregate": aggregate(list(per_seed.values())),
        "per_subject": {subj: aggregate(ms) for subj, ms in subject_metrics.items()},
        "warnings": warnings_out,
        "chance": {"balanced_accuracy": 1.0 / n_classes,
                   "auroc": 0.5 if n_classes == 2 else None,
                   "auc_pr": float((labels == 1).mean()) if n_classes == 2 else None},
        "n_subjects": len(subject_metrics),
        "provenance": {
            "run": str(run),
            "stores": [str(s) for s in stores],
            "config": cfg,
            "data_fingerprint": meta.get("data_fingerprint"),
            "versions": meta.get("versions"),
            "seeds": list(per_seed),
        },
    }
    title = title or f"neuript evaluation — {run.name} ({split} split)"
    json_path, md_path = write_report(results, run, title=title, paper_reference=paper_reference)
    mean_probs = np.mean(all_probs, axis=0)
    pred = mean_probs.argmax(1)
    cm = pd.crosstab(pd.Categorical(labels, categories=range(n_classes)),
                     pd.Categorical(pred, categories=range(n_classes)), dropna=False).to_numpy()
    seeds_txt = ", ".join(s.removeprefix("seed") for s in per_seed)
    what = (f"{run.name}, {split} split, seed{'s' if len(per_seed) > 1 else ''} {seeds_txt}"
            f"{' (probabilities averaged)' if len(per_seed) > 1 else ''}: {len(ds)} windows, "
            f"{len(subject_metrics)} subject{'s' if len(subject_metrics) != 1 else ''}")
    plots = {
        "confusion_matrix": str(plot_confusion_matrix(cm, class_names, run / "confusion_matrix.png",
                                                      title=f"Confusion matrix — {what}")),
        "roc": str(plot_roc(labels, mean_probs, run / "roc.png", class_names=class_names,
                            title=f"ROC / PR — {what}")),
    }
    curves = learning_curves(run, meta)
    if curves is not None:
        plots["learning_curves"] = str(curves)
    results["files"] = {"report_json": str(json_path), "report_md": str(md_path), **plots}
    return results


def learning_curves(run: Path, meta: dict[str, Any] | None = None) -> Path | None:
    """``RUN/learning_curves.png`` from every seed's ``history.json`` (None when no seed has one)."""
    from neuript.evaluate.plots import plot_learning_curves

    run = Path(run)
    meta = meta or json.loads((run / "run.json").read_text())
    histories = {}
    for d in sorted(run.glob("seed*")):
        h = d / "history.json"
        if h.is_file():
            histories[d.name] = json.loads(h.read_text())
    if not histories:
        return None
    n = meta.get("n_windows", {})
    subj = meta.get("n_subjects", {})
    n_classes = len(meta.get("label_names") or {}) or 2
    title = (f"{run.name}: learning curves, seeds {', '.join(h.removeprefix('seed') for h in histories)} — "
             f"train {n.get('train', '?')} windows / {subj.get('train', '?')} subjects, "
             f"val {n.get('val', '?')} windows / {subj.get('val', '?')} subjects")
    return plot_learning_curves(histories, run / "learning_curves.png", title=title, chance=1.0 / n_classes)
