"""Evaluation layer: benchmark metrics, reports, figures and classical baselines.

Public API::

    from neuript.evaluate import compute_metrics, aggregate, primary_metric, write_report, make_baseline
    from neuript.evaluate.plots import plot_confusion_matrix, plot_roc, plot_reconstruction

``plots`` (matplotlib) is imported lazily on first attribute access.
"""

from __future__ import annotations

from typing import Any

from neuript.evaluate.baselines import available_baselines, make_baseline, run_baseline
from neuript.evaluate.metrics import (
    UndefinedMetricWarning,
    aggregate,
    compute_metrics,
    paper_metrics,
    primary_metric,
)
from neuript.evaluate.report import write_report

_LAZY_PLOTS = ("plot_confusion_matrix", "plot_roc", "plot_reconstruction")

__all__ = [
    "UndefinedMetricWarning",
    "aggregate",
    "available_baselines",
    "compute_metrics",
    "make_baseline",
    "paper_metrics",
    "primary_metric",
    "run_baseline",
    "write_report",
    *_LAZY_PLOTS,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_PLOTS:
        from neuript.evaluate import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
