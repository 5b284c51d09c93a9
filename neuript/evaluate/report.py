"""Benchmark report writer: ``report.json`` (complete, machine-readable) + ``report.md`` (human summary).

Expected layout of ``results`` (the caller assembles it; unknown extra keys are kept in the JSON)::

    {
        "task": "binary" | "multiclass",          # optional; inferred from the metric names if absent
        "dataset": "eegmat",                      # optional, shown in the markdown header
        "model": "neuript_base",                  # optional, shown in the markdown header
        "split": "test",                          # optional, shown in the markdown header
        "note": "...",                            # optional caveat, shown as a highlighted note
        "per_seed": {0: {...metrics...}, 1: {...}},   # or [{"seed": 0, **metrics}, ...]
        "aggregate": {name: {"mean", "std", "n", "values"}},  # optional; computed from per_seed if absent
        "provenance": {"config": ..., "versions": ..., "data_fingerprint": ..., "seeds": [...]},
        # cross-validation (optional): per_seed keys are "fold-XX/seed<k>", aggregate is over folds × seeds
        "cv": {"scheme": "loso" | "kfold:K", "n_folds": int, "folds": [...]},
        "aggregate_over": "folds × seeds",         # optional, default "seeds"
        "pooled": {"aggregate": {...}},           # optional: metrics of all held-out predictions together
        "alignment": "none",                      # optional: this run's alignment, in the "Baselines" table
        "baselines": [{"label", "align", "C", "aggregate"}, ...],   # optional: rows of the "Baselines" table
        "seed_ensemble": {"n_seeds", "metrics", "per_subject"},     # optional: the seeds' mean probabilities
    }

Metric dicts are the outputs of :func:`neuript.evaluate.metrics.compute_metrics` (fractions). The markdown
renders them as mean ± std in percent. Both files are written atomically (temporary file + ``os.replace``).
The JSON is strict: ``nan``/``inf`` become ``null``, numpy types become Python types.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from neuript._atomic import atomic_write_text, to_jsonable
from neuript.evaluate.metrics import (
    BINARY_METRICS,
    METRIC_DISPLAY_NAMES,
    MULTICLASS_METRICS,
    _ordered_metric_names,
    aggregate,
)

__all__ = ["JSON_NAME", "MD_NAME", "to_jsonable", "write_report"]

JSON_NAME = "report.json"
MD_NAME = "report.md"

#: Metrics stored as fractions and rendered in percent. Everything else is rendered as a plain number.
PERCENT_METRICS: frozenset[str] = frozenset({*BINARY_METRICS, *MULTICLASS_METRICS, "accuracy"})
#: Bookkeeping scalars that are kept in the JSON but left out of the markdown summary table.
_NOT_IN_SUMMARY: frozenset[str] = frozenset({"n_samples"})




def _per_seed_items(per_seed: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Normalise ``per_seed`` (mapping seed -> metrics, or list of dicts with a ``seed`` key) to pairs."""
    if per_seed is None:
        return []
    if isinstance(per_seed, Mapping):
        return [(str(k), v) for k, v in per_seed.items()]
    items = []
    for i, d in enumerate(per_seed):
        if not isinstance(d, Mapping):
            raise TypeError(f"per_seed[{i}] must be a mapping of metrics, got {type(d).__name__}")
        seed = d.get("seed", i)
        items.append((str(seed), {k: v for k, v in d.items() if k != "seed"}))
    return items


def _infer_task(names: Sequence[str]) -> str | None:
    if any(n in names for n in ("auroc", "auc_pr")):
        return "binary"
    if any(n in names for n in ("cohen_kappa", "f1_weighted")):
        return "multiclass"
    return None


def _fmt_value(name: str, value: Any, *, decimals: int) -> str:
    if value is None or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        return "n/a"
    v = float(value)
    if name in PERCENT_METRICS:
        return f"{100 * v:.{decimals}f}"
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.4g}"


def _fmt_mean_std(name: str, agg: Mapping[str, Any], *, decimals: int) -> str:
    mean = agg.get("mean")
    std = agg.get("std")
    m = _fmt_value(name, mean, decimals=decimals)
    if m == "n/a":
        return m
    if int(agg.get("n") or 0) < 2:  # one seed: no spread to report ("± 0.00" would claim one)
        return f"{m} ± —"
    s = _fmt_value(name, std, decimals=decimals)
    return m if s == "n/a" else f"{m} ± {s}"


def _fmt_paper(value: Any, *, decimals: int) -> str:
    """Paper numbers are given in percent: a float, a (mean, std) pair or a {"mean", "std"} mapping."""
    if isinstance(value, Mapping):
        mean, std = value.get("mean"), value.get("std")
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        mean, std = value
    else:
        mean, std = value, None
    if mean is None or not isinstance(mean, numbers.Real) or not math.isfinite(float(mean)):
        return "n/a"
    out = f"{float(mean):.{decimals}f}"
    if isinstance(std, numbers.Real) and math.isfinite(float(std)):
        out += f" ± {float(std):.{decimals}f}"
    return out


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _render_markdown(
    doc: Mapping[str, Any],
    *,
    title: str,
    paper_reference: Mapping[str, Any] | None,
    paper_label: str,
    decimals: int,
    ddof: int,
) -> str:
    agg: Mapping[str, Mapping[str, Any]] = doc.get("aggregate") or {}
    per_seed = _per_seed_items(doc.get("per_seed"))
    lines: list[str] = [f"# {title}", ""]
    header = []
    for key in ("dataset", "model", "task", "split", "protocol"):
        if doc.get(key) is not None:
            header.append(f"**{key.capitalize()}:** {_md_escape(doc[key])}")
    seeds = [s for s, _ in per_seed]
    cv = doc.get("cv")
    if cv:
        seed_names = sorted({s.rsplit("/", 1)[-1] for s in seeds})
        header.append(f"**Cross-validation:** {_md_escape(cv.get('scheme'))}, {cv.get('n_folds')} folds × "
                      f"{', '.join(seed_names)} (n = {len(seeds)})")
    else:
        header.append(f"**Seeds:** {', '.join(seeds) if seeds else 'n/a'} (n = {len(seeds)})")
    header.append(f"**Generated:** {doc.get('generated_at', '')}")
    lines += ["  \n".join(header), ""]
    if doc.get("note"):
        lines += [f"> **Note:** {_md_escape(doc['note'])}", ""]
    for warning in doc.get("warnings") or []:
        lines += [f"> **Warning:** {_md_escape(warning)}", ""]

    names = [n for n in _ordered_metric_names(list(agg)) if n not in _NOT_IN_SUMMARY]
    if paper_reference:
        names += [n for n in _ordered_metric_names(list(paper_reference)) if n not in names]
    over = doc.get("aggregate_over") or "seeds"
    lines += [
        "## Results",
        "",
        f"Mean ± std over {over} (std with ddof = {ddof}); fraction metrics in percent; "
        f"n = number of {over} with a defined value.",
        "",
    ]
    chance = doc.get("chance") or {}
    boot = doc.get("bootstrap") or {}
    if boot:
        b0 = next(iter(boot.values()))
        lines += [f"CI: {100 * b0['level']:.0f} % percentile interval of the seed-mean value over "
                  f"{b0['n_boot']} bootstrap resamples of the {b0['n_subjects']} subjects (windows of a subject "
                  "move together).", ""]
    if names:
        cols = ["Metric", "This run", "n"] + (["CI"] if boot else []) + (["Chance"] if chance else [])
        if paper_reference:
            cols.append(_md_escape(paper_label))
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
        for n in names:
            a = agg.get(n, {})
            row = [
                _md_escape(METRIC_DISPLAY_NAMES.get(n, n)),
                _fmt_mean_std(n, a, decimals=decimals) if a else "n/a",
                str(a.get("n", 0)) if a else "0",
            ]
            if boot:
                ci = boot.get(n)
                row.append(f"[{_fmt_value(n, ci['low'], decimals=decimals)}, {_fmt_value(n, ci['high'], decimals=decimals)}]"
                           if ci else "")
            if chance:
                row.append(_fmt_value(n, chance.get(n), decimals=decimals) if chance.get(n) is not None else "")
            if paper_reference:
                row.append(_fmt_paper(paper_reference[n], decimals=decimals) if n in paper_reference else "")
            lines.append("| " + " | ".join(row) + " |")
    else:
        lines.append("_No metrics._")
    lines.append("")

    lines += _pooled_and_baselines(doc, names, decimals=decimals)
    lines += _seed_ensemble(doc, names, decimals=decimals)

    if per_seed:
        seed_names = _ordered_metric_names(
            list(
                dict.fromkeys(
                    k
                    for _, m in per_seed
                    for k, v in m.items()
                    if isinstance(v, numbers.Real) and not isinstance(v, bool)
                )
            )
        )
        if seed_names:
            lines += ["## Per fold and seed" if cv else "## Per seed", ""]
            cols = ["Fold/seed" if cv else "Seed", *(METRIC_DISPLAY_NAMES.get(n, n) for n in seed_names)]
            lines.append("| " + " | ".join(_md_escape(c) for c in cols) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * len(seed_names)) + "|")
            for seed, m in per_seed:
                row = [_md_escape(seed), *(_fmt_value(n, m.get(n), decimals=decimals) for n in seed_names)]
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")

    per_subject = doc.get("per_subject")
    if per_subject:
        held = ", from the fold that held it out" if cv else ""
        lines += ["## Per subject", "",
                  f"Mean ± std over seeds of each subject's windows{held} (fraction metrics in percent).", ""]
        lines += _subject_table(per_subject, lambda n, v: _fmt_mean_std(n, v or {}, decimals=decimals),
                                windows=lambda m: str(int(m.get("n_windows", {}).get("mean") or 0)))
        lines.append("")

    prov = doc.get("provenance")
    if prov:
        lines += [
            "## Provenance",
            "",
            "```json",
            json.dumps(prov, indent=2, allow_nan=False),
            "```",
            "",
        ]
    lines.append(f"Full results: `{JSON_NAME}`.")
    lines.append("")
    return "\n".join(lines)


def _pooled_and_baselines(doc: Mapping[str, Any], names: Sequence[str], *, decimals: int) -> list[str]:
    """The "Pooled over folds" table (cross-validation) and the "Baselines" table (this run, then a row per
    baseline with its alignment), when the document has them."""
    lines: list[str] = []
    agg = doc.get("aggregate") or {}
    pooled = (doc.get("pooled") or {}).get("aggregate")
    baselines = doc.get("baselines") or []
    if not (pooled or baselines):
        return lines
    shown = [n for n in names if n in agg or any(n in (b.get("aggregate") or {}) for b in baselines)]

    def table(rows: list[tuple[list[str], Mapping[str, Any] | None]], first: list[str]) -> list[str]:
        cols = [*first, *(METRIC_DISPLAY_NAMES.get(n, n) for n in shown)]
        out = ["| " + " | ".join(_md_escape(c) for c in cols) + " |",
               "|" + "|".join(["---"] * len(first) + ["---:"] * len(shown)) + "|"]
        for labels, a in rows:
            a = a or {}
            cells = [_fmt_mean_std(n, a[n], decimals=decimals) if a.get(n) else "n/a" for n in shown]
            out.append("| " + " | ".join([*map(_md_escape, labels), *cells]) + " |")
        return out

    if pooled:
        lines += ["## Pooled over folds", "",
                  "Metrics of all held-out predictions of a seed together (every subject once), mean ± std over "
                  "seeds.", "", *table([(["This run"], pooled)], ["Model"]), ""]
    if baselines:
        over = doc.get("aggregate_over") or "seeds"
        rows = [(["This run", str(doc.get("alignment") or "")], agg)]
        ens = doc.get("seed_ensemble")
        if ens:
            rows.append(([f"This run, ensemble of {ens['n_seeds']} seeds", str(doc.get("alignment") or "")],
                         aggregate([ens["metrics"]])))
        for b in baselines:
            c = b.get("C")
            rows.append(([str(b.get("label", "baseline")),
                          f"{b.get('align', '')}, C {'by subject-wise CV' if c == 'cv' else c}"], b.get("aggregate")))
        lines += ["## Baselines", "",
                  f"Classical baselines scored on the same windows (`neuript baseline`), mean ± std over {over}.",
                  "", *table(rows, ["Model", "Alignment"]), ""]
    return lines


def _seed_ensemble(doc: Mapping[str, Any], names: Sequence[str], *, decimals: int) -> list[str]:
    """The "Seed ensemble" table: metrics of the seeds' probabilities averaged per window, when present."""
    ens = doc.get("seed_ensemble")
    if not ens:
        return []
    metrics = ens.get("metrics") or {}
    shown = [n for n in names if isinstance(metrics.get(n), numbers.Real)]
    lines = ["## Seed ensemble", "",
             f"The class probabilities of the {ens['n_seeds']} seeds averaged per window, scored once (one value, "
             "not a mean over seeds).", "",
             "| " + " | ".join(["Model", *(_md_escape(METRIC_DISPLAY_NAMES.get(n, n)) for n in shown)]) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(shown)) + "|",
             "| " + " | ".join([f"Ensemble of {ens['n_seeds']} seeds",
                                *(_fmt_value(n, metrics[n], decimals=decimals) for n in shown)]) + " |", ""]
    per_subject = ens.get("per_subject") or {}
    if per_subject:
        lines += ["Per subject:", "", *_subject_table(per_subject, lambda n, v: _fmt_value(n, v, decimals=decimals)),
                  ""]
    return lines


def _subject_table(per_subject: Mapping[str, Mapping[str, Any]], cell, *, windows=None) -> list[str]:
    """A markdown table, one row per subject: ``cell(metric name, value)`` formats each metric; ``windows(m)``,
    when given, fills a "Windows" column."""
    names = [n for n in _ordered_metric_names(list(next(iter(per_subject.values())))) if n != "n_windows"]
    cols = ["Subject", *(["Windows"] if windows else []), *(METRIC_DISPLAY_NAMES.get(n, n) for n in names)]
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for subject, m in per_subject.items():
        row = [_md_escape(subject), *([windows(m)] if windows else []), *(cell(n, m.get(n)) for n in names)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def write_report(
    results: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    title: str,
    paper_reference: Mapping[str, Any] | None = None,
    paper_label: str = "Paper",
    decimals: int = 2,
    ddof: int = 0,
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` for one benchmark run.

    Parameters
    ----------
    results : mapping
        See the module docstring: ``per_seed`` metrics, optional ``aggregate`` (computed from ``per_seed``
        with :func:`~neuript.evaluate.metrics.aggregate` when absent), ``provenance`` (config, versions,
        data fingerprint, seed list, ... as the caller sees fit) and any extra keys, all kept in the JSON.
    out_dir : str or os.PathLike
        Output directory (created if missing). Existing reports there are replaced atomically.
    title : str
        Markdown title; also stored in the JSON.
    paper_reference : mapping, optional
        Published numbers **in percent**, ``metric name -> value``; a value may be a float, a
        ``(mean, std)`` pair or ``{"mean": .., "std": ..}``. E.g. EEGMAT (spec §6):
        ``{"balanced_accuracy": 86.46, "auc_pr": 78.27, "auroc": 91.11}``. Shown in an extra column.
    paper_label : str, default "Paper"
        Header of the paper column.
    decimals : int, default 2
        Decimals of the percent numbers in the markdown.
    ddof : int, default 0
        Delta degrees of freedom of the std: used when ``aggregate`` has to be computed here (see
        :func:`~neuript.evaluate.metrics.aggregate`) and stated in the markdown. Pass the value the
        caller's ``aggregate`` was computed with.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        Paths of ``report.json`` and ``report.md``.
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping, got {type(results).__name__}")
    out_dir = Path(out_dir)
    doc: dict[str, Any] = dict(results)
    per_seed = _per_seed_items(doc.get("per_seed"))
    if doc.get("aggregate") is None and per_seed:
        doc["aggregate"] = aggregate([m for _, m in per_seed], ddof=ddof)
    if doc.get("task") is None:
        doc["task"] = _infer_task(list(doc.get("aggregate") or {}))
    doc["title"] = title
    doc.setdefault("generated_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if paper_reference is not None:
        doc["paper_reference"] = {"label": paper_label, "metrics_percent": dict(paper_reference)}
    doc = to_jsonable(doc)

    json_text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    md_text = _render_markdown(
        doc, title=title, paper_reference=paper_reference, paper_label=paper_label, decimals=decimals, ddof=ddof
    )
    json_path = atomic_write_text(out_dir / JSON_NAME, json_text, fsync=True)
    md_path = atomic_write_text(out_dir / MD_NAME, md_text, fsync=True)
    return json_path, md_path
