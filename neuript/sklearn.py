"""A scikit-learn estimator around NeurIPT: ``NeurIPTClassifier().fit(X, y).predict(X)`` on EEG windows.

``X`` is an array ``(n_windows, n_channels, n_times)`` of raw-ish EEG at a declared ``sfreq`` (volts, MNE's
convention, or µV), described by ``ch_names`` or MNE ``chs_info``. The estimator applies neuript's input contract
itself — re-reference, band-pass and notch, resampling to the model's rate (as
:func:`neuript.data.preprocess.preprocess_raw`, each window filtered on its own as neuript does for
``mne.Epochs``), then A-law companding (:func:`neuript.inference.artifacts.input_transform`) — and trains a
:class:`~neuript.model.NeurIPT` from scratch or from a pretraining run (``pretrained=``) with the balanced loss
plus the weighted MoE auxiliary loss, as ``neuript finetune`` does (a small CPU budget by default).

The training loop is written here (not :func:`neuript.train.finetune.finetune`, which reads window stores); it
uses the model's public forward and :attr:`~neuript.model.NeurIPT.aux_loss`, and the fine-tuning loss
(:class:`neuript.train.finetune.BalancedLoss`) and learning-rate rule (:func:`neuript.train.finetune.default_lr`).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

__all__ = ["NeurIPTClassifier", "training_loss", "preprocess_windows", "PREPROCESSING_CHOICES"]

#: ``preprocessing=`` shortcuts: ``"paper"`` = band-pass 0.1-30 Hz + 50 Hz notch + resampling, channels as given;
#: ``"none"`` = resampling only (windows already filtered and referenced)
PREPROCESSING_CHOICES = ("paper", "none")
_UNITS = {"V": 1e6, "uV": 1.0, "µV": 1.0}
_LOSSES = ("balanced", "ce")


def training_loss(model: torch.nn.Module, loss_fn: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                  aux_weight: float) -> torch.Tensor:
    """The loss :meth:`NeurIPTClassifier.fit` minimises on one batch: ``loss_fn(model(x), y) + aux_weight *
    model.aux_loss`` (the MoE balancing loss of that forward, as in ``neuript finetune``)."""
    logits = model(x)
    return loss_fn(logits, y) + aux_weight * model.aux_loss


def _reference(x: np.ndarray, ch_names: Sequence[str], config) -> tuple[np.ndarray, list[str]]:
    """The re-reference step of ``preprocess_raw`` on windows (n, C, T): TCP / bipolar pairs, average or as
    recorded; returns the data and the output channel names."""
    from neuript.data.preprocess import tcp_montage
    from neuript.electrodes import TCP_BIPOLAR, parse_channel

    n, c, t = x.shape
    if config.reference in ("tcp", "bipolar"):
        pairs = list(TCP_BIPOLAR) if config.reference == "tcp" else list(config.bipolar_pairs)
        # the montage is linear per sample: apply it to all windows at once as one (C, n * T) signal
        flat = tcp_montage(x.transpose(1, 0, 2).reshape(c, n * t), list(ch_names), pairs=pairs, source="X")
        return flat.reshape(len(pairs), n, t).transpose(1, 0, 2), pairs
    if config.reference == "average":
        x = x - x.mean(axis=1, keepdims=True)
    return x, [parse_channel(nm).canonical or nm for nm in ch_names]


def preprocess_windows(x_uv: np.ndarray, ch_names: Sequence[str], *, sfreq: float,
                       config) -> tuple[np.ndarray, list[str]]:
    """Windows (n, C, T) in µV at ``sfreq`` → (n, C', T') µV at ``config.sfreq``, channel names.

    The steps and settings of :func:`neuript.data.preprocess.preprocess_raw` (re-reference, band-pass, notch
    harmonics below Nyquist, polyphase resampling), applied to every window on its own but with the filters
    designed once for the whole batch (``preprocess_raw`` per window designs them per call: ~100 ms a window).
    Equal to ``preprocess_raw`` on each window (tested)."""
    import mne

    from neuript.data.preprocess import resample

    x, names = _reference(np.asarray(x_uv, dtype=np.float64), ch_names, config)
    if config.h_freq is not None and sfreq < 2 * config.h_freq:
        raise ValueError(f"X is sampled at {sfreq:g} Hz, below twice the band-pass upper edge of {config.h_freq:g} "
                         "Hz; lower it (preprocessing={'h_freq': ...}) or pass preprocessing='none'")
    nyq = sfreq / 2
    h = config.h_freq if (config.h_freq is not None and config.h_freq < nyq) else None
    x = np.ascontiguousarray(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "filter longer than signal": windows are short
        if config.l_freq is not None or h is not None:
            x = mne.filter.filter_data(x, sfreq, config.l_freq, h, verbose="error")
        if config.notch:
            freqs = np.arange(config.notch, nyq - 1e-6, config.notch)
            if len(freqs):
                x = mne.filter.notch_filter(x, sfreq, freqs, verbose="error")
    if abs(sfreq - config.sfreq) > 1e-9:
        x = resample(x, sfreq_in=sfreq, sfreq_out=config.sfreq)
    return x.astype(np.float32), names


class NeurIPTClassifier(ClassifierMixin, BaseEstimator):
    """NeurIPT as a scikit-learn classifier on EEG windows ``X`` of shape ``(n_windows, n_channels, n_times)``.

    Parameters
    ----------
    sfreq : float
        Sampling rate of ``X`` in Hz (required).
    ch_names : list of str, optional
        Channel names of ``X`` (electrodes such as ``"Fp1"`` / ``"EEG T3"`` or bipolar pairs ``"Fp1-F7"``).
    chs_info : list of dict, optional
        MNE ``info["chs"]`` of ``X`` (names and, where finite, electrode locations); instead of ``ch_names``.
    unit : {"V", "uV"}
        Unit of ``X``: volts (MNE's arrays, ``epochs.get_data()``) or microvolts.
    preprocessing : {"paper", "none"} or dict
        ``"paper"``: the paper's band-pass (0.1-30 Hz) and 50 Hz notch, channels as given (no re-reference),
        then resampling to the model's rate. ``"none"``: resampling only, for windows that are already filtered.
        A dict: :class:`~neuript.data.preprocess.PreprocessConfig` fields on top of ``"paper"`` (e.g.
        ``{"notch": 60}``, ``{"reference": "tcp"}`` for the 20 TCP pairs from monopolar channels).
    target_sfreq : float, optional
        The model's rate; default that of ``pretrained``, else 64 Hz (the paper's).
    pretrained : str or path or NeurIPTPretrain, optional
        A pretraining run (``neuript pretrain``) whose encoder is fine-tuned; default: train from scratch.
    preset : str
        Model size when training from scratch (``neuript_tiny``, ``neuript_small``, ``neuript_base``).
    model_overrides : dict, optional
        Encoder hyperparameters on top of the preset (only regularisation settings with ``pretrained``).
    groups : str
        IILP lobe grouping (``functional``, ``hemispheres``, ``sagittal``, ``coronal``, ``mean``).
    epochs, batch_size : int
        Training budget (small by default, for CPUs).
    lr : float, optional
        Peak OneCycle learning rate; default by model width (:func:`neuript.train.finetune.default_lr`).
    weight_decay, grad_clip, label_smoothing : float
        AdamW weight decay, gradient-norm clip, label smoothing of the loss.
    aux_weight : float
        Weight of the MoE auxiliary (load-balancing) loss added to the task loss.
    loss : {"balanced", "ce"}
        ``"balanced"``: the fine-tuning loss of ``neuript finetune`` (logit adjustment by the class prior);
        ``"ce"``: plain (sigmoid / per-class) cross-entropy without the prior shift.
    device : str
        ``"cpu"``, ``"cuda"``, ``"auto"``.
    random_state : int, RandomState or None
        Seeds weight initialisation, shuffling and dropout (the global torch RNG is left as it was).
    verbose : int
        Print the loss of every epoch when > 0.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (any sortable labels: strings, integers).
    model_ : NeurIPT
        The trained model (eval mode); :meth:`save_pretrained` writes it as a neuript model artifact.
    n_chans_in_, n_times_in_ : int
        Channels and samples of the windows seen in ``fit`` (``predict`` checks them).
    ch_names_ : list of str
        The model's channels (after the re-reference).
    loss_curve_ : list of float
        Mean training loss per epoch.
    """

    def __init__(
        self,
        *,
        sfreq: float | None = None,
        ch_names: Sequence[str] | None = None,
        chs_info: Sequence[dict] | None = None,
        unit: str = "V",
        preprocessing: str | dict = "paper",
        target_sfreq: float | None = None,
        pretrained: Any = None,
        preset: str = "neuript_tiny",
        model_overrides: dict | None = None,
        groups: str = "functional",
        epochs: int = 5,
        batch_size: int = 16,
        lr: float | None = None,
        weight_decay: float = 0.05,
        grad_clip: float = 5.0,
        label_smoothing: float = 0.1,
        aux_weight: float = 0.8,
        loss: str = "balanced",
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.sfreq = sfreq
        self.ch_names = ch_names
        self.chs_info = chs_info
        self.unit = unit
        self.preprocessing = preprocessing
        self.target_sfreq = target_sfreq
        self.pretrained = pretrained
        self.preset = preset
        self.model_overrides = model_overrides
        self.groups = groups
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.label_smoothing = label_smoothing
        self.aux_weight = aux_weight
        self.loss = loss
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ sklearn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is (n_windows, n_channels, n_times)
        tags.input_tags.three_d_array = True
        tags.classifier_tags.multi_class = True
        return tags

    def _check_params(self) -> None:
        from neuript.runtime import check_choice, check_positive

        if self.sfreq is None:
            raise ValueError("give sfreq=, the sampling rate of X in Hz")
        check_positive("sfreq", self.sfreq)
        check_positive("target_sfreq", self.target_sfreq, allow_none=True)
        check_positive("epochs", self.epochs, integer=True)
        check_positive("batch_size", self.batch_size, integer=True)
        check_positive("lr", self.lr, allow_none=True)
        check_choice("unit", self.unit, tuple(_UNITS))
        check_choice("loss", self.loss, _LOSSES)
        if self.ch_names is None and self.chs_info is None:
            raise ValueError("give ch_names= or chs_info= (the channels of X, in order)")
        if not isinstance(self.preprocessing, dict):
            check_choice("preprocessing", self.preprocessing, PREPROCESSING_CHOICES)

    def _input_names(self) -> list[str]:
        if self.chs_info is not None:
            return [str(ch["ch_name"]) for ch in self.chs_info]
        return [str(n) for n in self.ch_names]

    def _load_pretrained(self):
        from neuript.inference.artifacts import load_pretrained

        if self.pretrained is None:
            return None
        if isinstance(self.pretrained, (str, os.PathLike)):
            return load_pretrained(self.pretrained)
        return self.pretrained

    def _config(self, pre):
        """The :class:`PreprocessConfig` of the model input (window length taken from ``X``)."""
        from neuript.data.preprocess import PreprocessConfig

        rate = self.target_sfreq or (getattr(pre, "sfreq", None) if pre is not None else None) or 64.0
        base: dict[str, Any] = dict(reference="as_recorded", sfreq=float(rate), reject_uv=None, flat_uv=None)
        if self.preprocessing == "none":
            base.update(l_freq=None, h_freq=None, notch=None)
        elif isinstance(self.preprocessing, dict):
            base.update(self.preprocessing)
        if base.get("h_freq") is not None and base["h_freq"] >= base["sfreq"] / 2:
            base["h_freq"] = 0.9 * base["sfreq"] / 2  # as neuript does for a model without a record
        return PreprocessConfig(**base)

    def _validate_X(self, X, *, reset: bool) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(f"X must be an array (n_windows, n_channels, n_times); got shape {X.shape}")
        if not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"X must be numeric; got dtype {X.dtype}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinite values")
        if reset:
            if X.shape[1] != len(self._input_names()):
                raise ValueError(f"X has {X.shape[1]} channels but {len(self._input_names())} channel names were "
                                 "given")
            self.n_chans_in_, self.n_times_in_ = int(X.shape[1]), int(X.shape[2])
        elif (X.shape[1], X.shape[2]) != (self.n_chans_in_, self.n_times_in_):
            raise ValueError(f"X has windows of {X.shape[1]} channels x {X.shape[2]} samples, but "
                             f"{type(self).__name__} was fitted on {self.n_chans_in_} x {self.n_times_in_}")
        return X

    def _model_input(self, X: np.ndarray) -> np.ndarray:
        """Raw windows → model input: µV, preprocessing, crop to the model's window, A-law."""
        from neuript.data.recording import check_amplitude
        from neuript.inference.artifacts import input_transform

        uv = X.astype(np.float64) * _UNITS[self.unit]
        data, _ = preprocess_windows(uv, self._input_names(), sfreq=float(self.sfreq), config=self.config_)
        data = data[..., : self.n_times_]
        check_amplitude(data, f"X (declared unit {self.unit!r})")
        return np.ascontiguousarray(input_transform(self.model_.metadata)(data), dtype=np.float32)

    # ------------------------------------------------------------------ model
    def _build_model(self, pre, names: list[str], n_outputs: int):
        from neuript.model import NeurIPT
        from neuript.model.classifier import FREE_ENCODER_SETTINGS
        from neuript.model.presets import preset_config

        channels: dict[str, Any] = {"ch_names": names}
        if self.chs_info is not None and self.config_.reference in ("as_recorded", "average"):
            channels = {"chs_info": [dict(ch, ch_name=n) for ch, n in zip(self.chs_info, names)]}
        common = dict(n_outputs=n_outputs, n_times=self.n_times_, sfreq=self.config_.sfreq, groups=self.groups,
                      **channels)
        overrides = dict(self.model_overrides or {})
        if pre is not None:
            free = {k: v for k, v in overrides.items() if k in FREE_ENCODER_SETTINGS}
            return NeurIPT.from_pretrain(pre, encoder_overrides=free, **common)
        return NeurIPT(**common, **preset_config(self.preset, overrides))

    def fit(self, X, y) -> "NeurIPTClassifier":
        """Train on windows ``X`` (n, C, T) with labels ``y`` (n,); returns ``self``."""
        from neuript.model.io import DEFAULT_INPUT_TRANSFORM
        from neuript.runtime import resolve_device
        from neuript.train.finetune import BalancedLoss, default_lr

        self._check_params()
        X = self._validate_X(X, reset=True)
        y = column_or_1d(np.asarray(y), warn=True)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} windows but y has {len(y)} labels")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single class ({self.classes_[0]!r}); a classifier needs at least two")
        n_classes = len(self.classes_)
        pre = self._load_pretrained()
        self.config_ = self._config(pre)
        self.n_times_ = int(math.floor(self.n_times_in_ * self.config_.sfreq / float(self.sfreq) + 1e-9))
        if self.n_times_ < 1:
            raise ValueError("the windows are shorter than one sample at the model's rate")
        device = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        counts = np.bincount(y_idx, minlength=n_classes).astype(np.float64)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            names = _reference(np.zeros((1, X.shape[1], 1)), self._input_names(), self.config_)[1]
            self.ch_names_ = names
            model = self._build_model(pre, names, 1 if n_classes == 2 else n_classes).to(device)
            model.metadata.update(label_names={i: str(c) for i, c in enumerate(self.classes_)},
                                  preprocessing=self.config_.to_dict(), input_transform=dict(DEFAULT_INPUT_TRANSFORM),
                                  kind="finetune")
            self.model_ = model
            x_all = torch.from_numpy(self._model_input(X))
            y_all = torch.as_tensor(y_idx, dtype=torch.long)
            loss_fn = BalancedLoss(counts / counts.sum(), tau=1.0 if self.loss == "balanced" else 0.0,
                                   label_smoothing=self.label_smoothing, binary=n_classes == 2,
                                   multiclass="sigmoid").to(device)
            lr = self.lr if self.lr is not None else default_lr(model.encoder.cfg.d_model)
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=self.weight_decay)
            steps = -(-len(X) // int(self.batch_size))
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=self.epochs * steps,
                                                            pct_start=0.1, anneal_strategy="cos",
                                                            cycle_momentum=False)
            order_rng = np.random.default_rng(seed)
            self.loss_curve_ = []
            model.train()
            for epoch in range(int(self.epochs)):
                losses = []
                for idx in np.array_split(order_rng.permutation(len(X)), steps):
                    if len(idx) < 2 and len(X) > 1:  # a 1-window batch gives a degenerate MoE balance term
                        continue
                    xb, yb = x_all[idx].to(device), y_all[idx].to(device)
                    optimizer.zero_grad(set_to_none=True)
                    loss = training_loss(model, loss_fn, xb, yb, aux_weight=float(self.aux_weight))
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    losses.append(float(loss.detach()))
                self.loss_curve_.append(float(np.mean(losses)) if losses else math.nan)
                if self.verbose:
                    print(f"epoch {epoch}: train loss {self.loss_curve_[-1]:.4f}")
            model.eval()
        self.n_iter_ = int(self.epochs)
        return self

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _logits(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        x_all = torch.from_numpy(self._model_input(X))
        device = self.model_.group_weights.device
        self.model_.eval()
        out = [self.model_(x_all[i:i + 64].to(device)).float().cpu() for i in range(0, len(x_all), 64)]
        return torch.cat(out) if out else torch.zeros(0, self.model_.n_outputs)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in :attr:`classes_` order."""
        from neuript.inference.predict import probabilities

        return probabilities(self._logits(X)).numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of every window (labels from :attr:`classes_`)."""
        proba = self.predict_proba(X)  # first: raises NotFittedError before classes_ is read
        return self.classes_[proba.argmax(axis=1)]

    def save_pretrained(self, directory: str | os.PathLike):
        """Write the trained model as a neuript model artifact (``neuript predict`` / ``export`` read it; note that
        the recorded preprocessing expects the channels named as in :attr:`ch_names_`)."""
        check_is_fitted(self, "model_")
        return self.model_.save_pretrained(directory)
