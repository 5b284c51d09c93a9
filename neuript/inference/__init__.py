"""Running trained models: on MNE objects and recording files (:mod:`.predict`), on live streams
(:mod:`.streaming`), over a run's evaluation split (:mod:`.evaluate_run`), and the model artifacts they read
(:mod:`.artifacts`).

Dependencies: ``inference → data, model, evaluate``; it never imports :mod:`neuript.train`.
"""

from .artifacts import load_classifier, load_pretrained, save_model
from .predict import embed, embed_file, predict, predict_dataset, predict_file
from .streaming import StreamingPredictor

__all__ = ["predict", "embed", "predict_file", "embed_file", "predict_dataset", "StreamingPredictor",
           "load_classifier", "load_pretrained", "save_model", "evaluate_run"]


def __getattr__(name):
    if name == "evaluate_run":  # pulls in matplotlib: imported on use
        from .evaluate_run import evaluate_run

        return evaluate_run
    raise AttributeError(name)
