"""Evaluate a fine-tuning run: every seed's best model on a split, metrics mean ± std, report and plots."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

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
                 title: str | None = None, baselines: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """Evaluate every seed of a fine-tuning run and write ``report.json``, ``report.md`` and PNG plots.

    Parameters
    ----------
    run
        Directory written by :func:`neuript.train.finetune.finetune`. A cross-validation run (``--cv``) is
        evaluated fold by fold on each fold's held-out subjects (a report in every ``fold-XX/``), and its report
        gives the mean ± std over folds and seeds, the metrics of the pooled held-out predictions, and every
        subject's metrics (each subject is held out once).
    split
        Split to evaluate; default: the run's test split, or its validation split when the test split is empty
        (the report then says so). Not for a cross-validation run.
    stores
        Stores to read the split from (default: the stores the run was trained on). Not for a cross-validation
        run.
    baselines
        Baseline result files written by ``neuript baseline`` to add as rows of the report; they must come from
        the same evaluation (split and subjects, or folds). ``RUN/baseline-*.json`` files are added too when they
        match (a mismatched one found there is skipped with a warning).
    """
    from neuript.evaluate.report import write_report

    run = Path(run)
    meta = _read_meta(run)
    cv = meta.get("cv")
    # a given baseline from another protocol fails now, not after the evaluation
    _baseline_rows(run, {"cv": {"scheme": cv["cv"], "folds": cv["folds"]} if cv else None}, baselines,
                   windows=False, found=False)
    if meta.get("kind") == "finetune-cv":
        if split is not None or stores is not None:
            raise ValueError("a cross-validation run is evaluated on the held-out subjects of its folds; "
                             "--split and --store do not apply to it")
        return _evaluate_cv(run, meta, device=device, batch_size=batch_size, paper_reference=paper_reference,
                            title=title, baselines=baselines)
    cfg = meta["config"]
    stores = stores or cfg["stores"]
    align = _dataset_options(cfg, run)
    note = None
    if meta.get("fold") and split is None and stores == cfg["stores"]:
        ds = _fold_heldout(cfg, meta["fold"])  # one fold of a cross-validation run: its held-out subjects
        split = "held-out"
    else:
        ds, split, note = _split_dataset(cfg, stores, split, align)
    results, arrays = _evaluate_seeds(run, meta, ds, split=split, note=note, stores=stores, device=device,
                                      batch_size=batch_size)
    results["baselines"] = _baseline_rows(run, results, baselines)
    title = title or f"neuript evaluation — {run.name} ({split} split)"
    json_path, md_path = write_report(results, run, title=title, paper_reference=paper_reference)
    plots = _plots(run, arrays, results, meta, n_windows=len(ds))
    results["files"] = {"report_json": str(json_path), "report_md": str(md_path), **plots}
    return results


def _read_meta(run: Path) -> dict[str, Any]:
    path = run / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a fine-tuning run (no run.json). Run `neuript finetune` first.")
    return json.loads(path.read_text())


def _dataset_options(cfg: dict[str, Any], run: Path) -> dict[str, Any]:
    """Dataset options of a fixed-split run: its alignment and pre-emphasis, with the pre-emphasis gain its
    models recorded (that of its training windows)."""
    from neuript.model.io import read_metadata
    from neuript.data.loader import dataset_options

    opts = dataset_options(cfg)
    if opts["preemphasis"]:
        t = read_metadata(_seed_dirs(run)[0] / "model").get("input_transform") or {}
        opts["preemphasis_gain"] = float(t.get("preemphasis_gain", 1.0))
    return opts


def _protocol(cfg: dict[str, Any]) -> str:
    align, by = cfg.get("align", "none"), cfg.get("align_by", "subject")
    fn = cfg.get("feature_norm", "none")
    if align == "none" and fn == "none":
        return "paper protocol (no alignment)"
    parts = ([f"per-{by} alignment ({align})"] if align != "none" else []) + (
        [f"per-{fn} feature normalisation"] if fn != "none" else [])
    return (f"transductive {' and '.join(parts)}, computed from the unlabeled windows of each "
            f"{by if align != 'none' else fn} of the evaluated split")


def _split_dataset(cfg: dict[str, Any], stores: list[str], split: str | None, align: dict[str, str]):
    """The dataset of ``split`` (default: test, else val with a note), the split's name and the note."""
    from neuript.data.loader import WindowDataset

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
    return ds, split, note


def _pool(cfg: dict[str, Any]):
    from neuript.data.loader import dataset_options
    from neuript.evaluate.folds import load_pool

    return load_pool(cfg["stores"], train_split=cfg.get("train_split", "train"),
                     val_split=cfg.get("val_split", "val"), test_split=cfg.get("test_split", "test"),
                     **dataset_options(cfg))


def _fold_heldout(cfg: dict[str, Any], fold: dict[str, Any], pool=None):
    """The held-out windows of one fold (from ``pool`` = :func:`_pool`'s result, built when not given)."""
    from neuript.evaluate.folds import fold_indices

    ds, keys, _ = pool if pool is not None else _pool(cfg)
    idx = fold_indices(keys, fold["test_subjects"])
    if len(idx) == 0:
        raise ValueError(f"the held-out subjects {fold['test_subjects']} of fold {fold['name']} have no windows in "
                         f"{cfg['stores']} (the stores changed since the run?)")
    return ds.select(idx)


def subject_metrics(labels: np.ndarray, probs: np.ndarray, subjects: np.ndarray, *,
                    n_classes: int) -> dict[str, dict[str, Any]]:
    """Balanced accuracy, AUROC (binary) or accuracy and kappa, and the window count of every subject."""
    from neuript.evaluate.metrics import compute_metrics

    out = {}
    for subject in sorted(set(subjects)):
        sel = subjects == subject
        with warnings.catch_warnings():  # a subject with one class has no AUROC: reported as undefined
            warnings.simplefilter("ignore")
            m = compute_metrics(labels[sel], probs[sel], n_classes=n_classes)
        m = {k: v for k, v in m.items() if k in ("balanced_accuracy", "auroc", "accuracy", "cohen_kappa")}
        m["n_windows"] = int(sel.sum())
        out[str(subject)] = m
    return out


def seed_ensemble(labels: np.ndarray, probs: Sequence[np.ndarray], subjects: np.ndarray, *,
                  n_classes: int) -> dict[str, Any]:
    """Metrics of the seeds' class probabilities averaged per window: the ensemble of the run's models.

    Parameters
    ----------
    labels
        True classes of the windows, ``(n,)``.
    probs
        One ``(n, n_classes)`` probability array per seed, rows in the order of ``labels``.
    subjects
        Subject key of every window, for the per-subject metrics.
    n_classes
        Number of classes.

    Returns
    -------
    dict
        ``n_seeds``, ``metrics`` (:func:`~neuript.evaluate.metrics.compute_metrics` of the mean probabilities)
        and ``per_subject`` (:func:`subject_metrics` of them).
    """
    from neuript.evaluate.metrics import compute_metrics

    if len(probs) < 2:
        raise ValueError(f"a seed ensemble needs at least 2 seeds' probabilities, got {len(probs)}")
    mean = np.mean(np.stack(probs), axis=0)
    return {"n_seeds": len(probs), "metrics": compute_metrics(labels, mean, n_classes=n_classes),
            "per_subject": subject_metrics(labels, mean, subjects, n_classes=n_classes)}


def _evaluate_seeds(run: Path, meta: dict[str, Any], ds, *, split: str, note: str | None, stores: list[str],
                    device: str, batch_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every seed's predictions on ``ds``: the results dict of the report, and the arrays behind it."""
    from neuript.evaluate.folds import subject_keys
    from neuript.evaluate.metrics import aggregate, bootstrap_subjects, collapse_warning, compute_metrics

    cfg = meta["config"]
    dev = resolve_device(device)
    label_names: dict[int, str] = {int(k): v for k, v in meta["label_names"].items()}
    n_classes = len(label_names)
    class_names = [label_names[i] for i in range(n_classes)]
    per_seed: dict[str, dict[str, Any]] = {}
    subject_runs: dict[str, list[dict[str, Any]]] = {}
    warnings_out: list[str] = []
    all_probs: dict[str, np.ndarray] = {}
    labels = subjects = None
    for seed_dir in _seed_dirs(run):
        model, _ = load_classifier(seed_dir / "model", device=dev)
        probs, labels, index = predict_dataset(model, ds, batch_size=batch_size, device=dev,
                                               feature_norm=cfg.get("feature_norm", "none"))
        per_seed[seed_dir.name] = compute_metrics(labels, probs, n_classes=n_classes)
        all_probs[seed_dir.name] = probs
        collapsed = collapse_warning(probs.argmax(1), class_names)
        if collapsed:
            warnings_out.append(f"{seed_dir.name}: {collapsed}")
            log.warning("%s: %s", seed_dir.name, collapsed)
        subjects = subject_keys(ds.windows.iloc[index])
        for subject, m in subject_metrics(labels, probs, subjects, n_classes=n_classes).items():
            subject_runs.setdefault(subject, []).append(m)
        table = ds.windows.iloc[index][["dataset", "subject", "session", "recording", "start", "label"]].copy()
        for c in range(n_classes):
            table[f"prob_{class_names[c]}"] = probs[:, c]
        table["predicted"] = [class_names[i] for i in probs.argmax(1)]
        with atomic_path(seed_dir / f"predictions_{split}.csv") as tmp:
            table.to_csv(tmp, index=False)
    results = {
        "split": split,
        "protocol": _protocol(cfg),
        "alignment": cfg.get("align", "none"),
        "feature_norm": cfg.get("feature_norm", "none"),
        "preemphasis": float(cfg.get("preemphasis", 0.0) or 0.0),
        "note": note,
        "n_windows": int(len(ds)),
        "class_counts": {class_names[c]: int((labels == c).sum()) for c in range(n_classes)},
        "per_seed": per_seed,
        "aggregate": aggregate(list(per_seed.values())),
        "per_subject": {subj: aggregate(ms) for subj, ms in subject_runs.items()},
        "bootstrap": bootstrap_subjects(labels, list(all_probs.values()), subjects, n_classes=n_classes)
        if all_probs else {},
        "warnings": warnings_out,
        "chance": _chance(labels, n_classes),
        "n_subjects": len(subject_runs),
        "evaluated_subjects": {subj: ms[0]["n_windows"] for subj, ms in sorted(subject_runs.items())},
        "provenance": {
            "run": str(run),
            "stores": [str(s) for s in stores],
            "config": cfg,
            "data_fingerprint": meta.get("data_fingerprint"),
            "versions": meta.get("versions"),
            "seeds": list(per_seed),
        },
    }
    if len(all_probs) > 1:
        results["seed_ensemble"] = seed_ensemble(labels, list(all_probs.values()), subjects, n_classes=n_classes)
    if meta.get("fold"):
        results["fold"] = meta["fold"]
    arrays = {"labels": labels, "probs": all_probs, "subjects": subjects, "class_names": class_names}
    return results, arrays


def _chance(labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    return {"balanced_accuracy": 1.0 / n_classes, "auroc": 0.5 if n_classes == 2 else None,
            "auc_pr": float((labels == 1).mean()) if n_classes == 2 else None}


def _plots(run: Path, arrays: dict[str, Any], results: dict[str, Any], meta: dict[str, Any], *,
           n_windows: int) -> dict[str, str]:
    """Confusion matrix and ROC of the seed-averaged probabilities, and the learning curves."""
    from neuript.evaluate.plots import plot_confusion_matrix, plot_roc

    labels, class_names = arrays["labels"], arrays["class_names"]
    n_classes = len(class_names)
    mean_probs = np.mean(list(arrays["probs"].values()), axis=0)
    pred = mean_probs.argmax(1)
    cm = pd.crosstab(pd.Categorical(labels, categories=range(n_classes)),
                     pd.Categorical(pred, categories=range(n_classes)), dropna=False).to_numpy()
    seeds = sorted({s.rsplit("/", 1)[-1] for s in arrays["probs"]})
    seeds_txt = ", ".join(s.removeprefix("seed") for s in seeds)
    n_subjects = results["n_subjects"]
    what = (f"{run.name}, {results['split']} split, seed{'s' if len(seeds) > 1 else ''} {seeds_txt}"
            f"{' (probabilities averaged)' if len(seeds) > 1 else ''}: {n_windows} windows, "
            f"{n_subjects} subject{'s' if n_subjects != 1 else ''}")
    plots = {
        "confusion_matrix": str(plot_confusion_matrix(cm, class_names, run / "confusion_matrix.png",
                                                      title=f"Confusion matrix — {what}")),
        "roc": str(plot_roc(labels, mean_probs, run / "roc.png", class_names=class_names,
                            title=f"ROC / PR — {what}")),
    }
    curves = learning_curves(run, meta) if meta.get("kind") != "finetune-cv" else None
    if curves is not None:
        plots["learning_curves"] = str(curves)
    return plots


def _evaluate_cv(run: Path, meta: dict[str, Any], *, device: str, batch_size: int,
                 paper_reference: dict | None, title: str | None,
                 baselines: Sequence[str | Path] | None) -> dict[str, Any]:
    """Every fold of a cross-validation run on its held-out subjects, and the summary over folds and seeds."""
    from neuript.evaluate.metrics import aggregate, compute_metrics
    from neuript.evaluate.report import write_report

    cfg, cv = meta["config"], meta["cv"]
    pool = _pool(cfg)
    per_seed: dict[str, dict[str, Any]] = {}
    per_fold: dict[str, dict[str, Any]] = {}
    per_subject: dict[str, dict[str, Any]] = {}
    folds_out, warnings_out = [], []
    pooled: dict[str, list] = {}
    labels_all, subjects_all, files = [], [], {}
    for fold in cv["folds"]:
        fdir = run / fold["name"]
        if not (fdir / "run.json").is_file() or not any(is_saved_model(d) for d in seed_model_dirs(fdir)):
            raise FileNotFoundError(f"{fdir} holds no fine-tuned model: the cross-validation did not finish; rerun "
                                    "the same `neuript finetune ... --cv` command to resume it")
        fmeta = _read_meta(fdir)
        ds = _fold_heldout(cfg, fold, pool)
        res, arrays = _evaluate_seeds(fdir, fmeta, ds, split="held-out", note=None, stores=cfg["stores"],
                                      device=device, batch_size=batch_size)
        res["baselines"] = []
        res["fold"] = fold
        # a fold's report and predictions, no plots: those of the run show the pooled held-out predictions
        write_report(res, fdir, title=f"neuript evaluation — {run.name}/{fold['name']} (held-out subjects "
                                      f"{', '.join(fold['test_subjects'])})")
        for seed, m in res["per_seed"].items():
            per_seed[f"{fold['name']}/{seed}"] = m
        per_fold[fold["name"]] = res["aggregate"]
        per_subject.update(res["per_subject"])
        warnings_out += [f"{fold['name']} {w}" for w in res["warnings"]]
        folds_out.append({**fold, "n_windows": res["n_windows"], "seeds": list(res["per_seed"])})
        labels_all.append(arrays["labels"])
        subjects_all.append(arrays["subjects"])
        for seed, probs in arrays["probs"].items():
            pooled.setdefault(seed, []).append(probs)
        files[fold["name"]] = str(fdir / "report.md")
    label_names = {int(k): v for k, v in meta["label_names"].items()}
    n_classes = len(label_names)
    labels = np.concatenate(labels_all)
    # seeds every fold finished: their held-out predictions together cover every subject once
    complete = {s: np.concatenate(p) for s, p in pooled.items() if len(p) == len(cv["folds"])}
    pooled_metrics = {s: compute_metrics(labels, p, n_classes=n_classes) for s, p in complete.items()}
    results = {
        "split": "held-out (cross-validation)",
        "protocol": f"{_describe_cv(cv)}; {_protocol(cfg)}",
        "alignment": cfg.get("align", "none"),
        "feature_norm": cfg.get("feature_norm", "none"),
        "preemphasis": float(cfg.get("preemphasis", 0.0) or 0.0),
        "note": None,
        "cv": {"scheme": cv["cv"], "n_folds": len(cv["folds"]), "pool": cv["pool"],
               "inner_validation": cv.get("inner_validation"), "folds": folds_out},
        "aggregate_over": "folds × seeds",
        "n_windows": int(len(labels)),
        "class_counts": {label_names[c]: int((labels == c).sum()) for c in range(n_classes)},
        "per_seed": per_seed,
        "aggregate": aggregate(list(per_seed.values())),
        "per_fold": per_fold,
        "pooled": {"per_seed": pooled_metrics, "aggregate": aggregate(list(pooled_metrics.values()))},
        "per_subject": dict(sorted(per_subject.items())),
        "warnings": warnings_out,
        "chance": _chance(labels, n_classes),
        "n_subjects": len(per_subject),
        "evaluated_subjects": {s: m["n_windows"]["mean"] for s, m in sorted(per_subject.items())},
        "provenance": {"run": str(run), "stores": [str(s) for s in cfg["stores"]], "config": cfg,
                       "data_fingerprint": meta.get("data_fingerprint"), "versions": meta.get("versions"),
                       "seeds": sorted({s.rsplit("/", 1)[-1] for s in per_seed})},
    }
    results["baselines"] = _baseline_rows(run, results, baselines)
    title = title or f"neuript evaluation — {run.name} ({cv['cv']} cross-validation, {len(cv['folds'])} folds)"
    json_path, md_path = write_report(results, run, title=title, paper_reference=paper_reference)
    plots = {}
    if complete:  # plots of the pooled held-out predictions
        arrays = {"labels": labels, "probs": complete, "subjects": np.concatenate(subjects_all),
                  "class_names": [label_names[i] for i in range(n_classes)]}
        plots = _plots(run, arrays, results, meta, n_windows=len(labels))
    results["files"] = {"report_json": str(json_path), "report_md": str(md_path), **plots,
                        **{f"report_{k}": v for k, v in files.items()}}
    return results


def _describe_cv(cv: dict[str, Any]) -> str:
    scheme = cv["cv"]
    name = ("leave-one-subject-out" if scheme == "loso" else f"subject-wise {scheme.split(':')[1]}-fold")
    return f"{name} cross-validation ({len(cv['folds'])} folds over {cv['pool']})"


def _baseline_rows(run: Path, results: dict[str, Any], files: Sequence[str | Path] | None, *,
                   windows: bool = True, found: bool = True) -> list[dict[str, Any]]:
    """Rows of the baseline table: the given baseline files (which must match this evaluation) and (``found``) the
    matching ``RUN/baseline-*.json`` files; ``windows=False`` checks only the protocol (split or folds)."""
    from neuript.evaluate.baseline_run import baseline_row, protocol_mismatch

    rows, seen = [], set()
    explicit = [Path(f) for f in files or []]
    for path in explicit + (sorted(run.glob("baseline-*.json")) if found else []):
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"baseline file {path} not found (write one with `neuript baseline`)") from None
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read the baseline file {path}: {err}") from None
        why = protocol_mismatch(doc, results, windows=windows)
        if why:
            if path in explicit:
                raise ValueError(f"the baseline {path} was not evaluated like {run}: {why}")
            log.warning("skipping %s: %s", path, why)
            results.setdefault("warnings", []).append(f"baseline {path.name} skipped: {why}")
            continue
        rows.append({**baseline_row(doc), "file": str(path)})
    return rows


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
