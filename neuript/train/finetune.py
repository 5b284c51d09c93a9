"""Fine-tuning with the IILP head: balanced loss, encoder freeze, early stopping, several seeds.

Each seed writes ``OUT/seed<k>/model`` (the best checkpoint on the validation split, safetensors + JSON with
everything :mod:`neuript.inference` needs to run it on a new recording) and its per-window predictions.
``OUT/results.json`` collects the per-seed metrics; :func:`neuript.inference.evaluate_run.evaluate_run` turns them into
the report.

With ``cv`` (``"loso"`` or ``"kfold:K"``) the run is a subject-wise cross-validation instead
(:mod:`neuript.evaluate.folds`): ``OUT/folds.json`` records the folds, every fold trains its seeds into
``OUT/fold-XX/seed<k>/model`` with early stopping on its inner validation subjects, and the evaluation reports every
fold's held-out subjects and the mean ± std over folds and seeds.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from neuript.data.loader import dataset_options
from neuript.inference.artifacts import is_saved_model, load_pretrained, store_fingerprint
from neuript.inference.featnorm import FEATURE_NORMS, batch_stats, group_feature_stats, group_keys
from neuript.inference.predict import predict_dataset
from neuript.model.heads import POOLINGS
from neuript.runtime import (OptionError, autocast, fingerprint, now_iso, resolve_device, resolve_precision,
                             seed_everything, versions)
from neuript._atomic import atomic_write_text
from neuript.train.checkpoint import write_json_atomic
from neuript.train.common import backward_in_micro_batches, check_memory_options, make_adamw
from neuript.train.progress import Progress

log = logging.getLogger(__name__)

__all__ = ["FinetuneConfig", "finetune", "BalancedLoss", "accumulate_gradients", "FinetuneData",
           "load_finetune_data", "finetune_data_of", "build_classifier_for"]


@dataclass
class FinetuneConfig:
    """Fine-tuning hyperparameters.

    Parameters
    ----------
    stores
        Window stores holding labelled ``train``/``val``(/``test``) splits, all of one montage.
    out
        Run directory.
    pretrained
        A pretraining run directory (or its ``model/`` export) to start from; ``None`` trains from scratch.
    preset, model_overrides
        Model size when training from scratch (ignored for the encoder shape when ``pretrained`` is given,
        except for dropout-like overrides).
    groups
        Lobe grouping of the IILP head: ``functional`` (paper), ``hemispheres``, ``sagittal``, ``coronal``, ``mean``.
    loss
        ``"balanced"`` (spec §5, the reference code's): logits shifted by the prior log-odds during training, binary
        cross-entropy per logit (independent sigmoids for C > 2), label smoothing; ``"balanced_softmax"``: the
        logit-adjusted softmax cross-entropy (shift ``tau * log prior``); ``"ce"``: plain cross-entropy. See
        :class:`BalancedLoss`.
    freeze_epochs
        Epochs at the start during which only the head trains.
    train_crop_s
        Train on a random crop of this many seconds of each window (a new offset per window and step: time-shift
        augmentation, and a step that costs about ``train_crop_s / window`` of a full-window step); validation,
        test and prediction always see whole windows. Rounded down to a multiple of the encoder's time
        reduction (the product of its merge factors). ``None``: whole windows.
    patience
        Early stopping: epochs without improvement of validation balanced accuracy.
    seeds
        One model per seed; metrics are reported as mean ± std over seeds.
    micro_batch_size
        Split every batch into micro-batches of this size and accumulate their gradients before one optimizer
        step (lower activation memory). The update equals the full batch's when dropout and gate noise are off,
        except for the MoE balancing loss, which is computed per micro-batch (tested); with them on, their
        random draws differ between splits, so the update is the same in distribution. ``None``: the whole
        batch at once.
    optimizer_state
        ``"fp32"`` (torch's AdamW) or ``"bf16"``: the AdamW moments stored in bfloat16 with stochastic rounding
        (:class:`neuript.train.optim.BF16StateAdamW`; half the optimizer memory, same update in expectation).
    align, align_by
        Label-free alignment of every subject's (or recording's) windows, in every split
        (:mod:`neuript.data.align`): ``"none"`` (the paper's protocol), ``"channel"`` (per-channel
        standardisation) or ``"euclidean"`` (Euclidean alignment). Transductive at test time: a test subject's
        transform comes from that subject's test windows. Recorded with the model; ``predict`` aligns a new
        recording with its own windows.
    preemphasis
        Pre-emphasis coefficient of the input (``x[t] - a x[t-1]``, :func:`neuript.data.preprocess.preemphasis`),
        applied after the alignment, before A-law; scaled so the training windows keep their standard deviation
        (the gain is recorded with the model). 0 (default): the paper's input. It tilts the 1/f EEG spectrum
        toward alpha and beta (docs/training.md).
    pool
        IILP statistics over time: ``"mean"`` (the paper's head) or ``"meanstd"`` (mean and log standard
        deviation, :class:`neuript.model.heads.IILPHead`).
    feature_norm, feature_norm_windows
        ``"none"`` (default, the paper's head), ``"subject"`` or ``"recording"``: the pooled features are
        standardised with the statistics of their subject's (recording's) windows before the linear layer
        (:mod:`neuript.inference.featnorm`); in training from ``feature_norm_windows`` random windows per group,
        refreshed every epoch. Label-free and transductive at test time, like ``align``.
    cv
        ``None`` (default): the stores' fixed train/val/test split. ``"loso"`` (leave one subject out) or
        ``"kfold:K"``: subject-wise cross-validation over the stores' train + val subjects (every labelled subject
        when the stores define no split; the test split is never used), see :mod:`neuript.evaluate.folds`.
    cv_val_fraction
        Share of each fold's training subjects held out (whole) for early stopping (at least one subject).
    batch_size
        Windows per optimizer step. 16 by default: small labelled sets need steps more than large batches (the
        bundled EEGMAT sample has 384 training windows: 6 steps per epoch at 64, and a 3-epoch run stayed at
        chance; at 16 it learned, docs/training.md).
    lr
        OneCycle peak learning rate of the encoder; ``None``: by model width (:data:`DEFAULT_LR`: 1e-3 for
        d_model ≤ 64, 3e-4 up to 256, the paper's 1e-4 above).
    """

    stores: Sequence[str] = ()
    out: str = "runs/finetune"
    pretrained: str | None = None
    preset: str = "neuript_tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    groups: str = "functional"
    loss: str = "balanced"
    tau: float = 1.0
    label_smoothing: float = 0.1
    epochs: int = 30
    batch_size: int = 16
    lr: float | None = None
    head_lr: float | None = None
    weight_decay: float = 0.05
    pct_start: float = 0.1
    freeze_epochs: int = 0
    train_crop_s: float | None = None
    patience: int = 8
    grad_clip: float = 5.0
    aux_weight: float = 0.8
    seeds: Sequence[int] = (0,)
    precision: str = "auto"
    num_workers: int = 0
    device: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    max_train_batches: int | None = None
    micro_batch_size: int | None = None
    optimizer_state: str = "fp32"
    align: str = "none"
    align_by: str = "subject"
    preemphasis: float = 0.0
    pool: str = "mean"
    feature_norm: str = "none"
    feature_norm_windows: int = 24
    cv: str | None = None
    cv_val_fraction: float = 0.2
    tensorboard: bool = False
    overwrite: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stores"] = [str(s) for s in self.stores]
        d["seeds"] = list(self.seeds)
        return d


#: default peak learning rate by encoder width: small models need larger steps to learn within a few epochs
#: (measured on EEGMAT, docs/training.md); the paper-size model keeps the paper's 1e-4
DEFAULT_LR = ((64, 1e-3), (256, 3e-4), (None, 1e-4))


def default_lr(d_model: int) -> float:
    """The peak learning rate :data:`DEFAULT_LR` gives an encoder of width ``d_model``."""
    for width, lr in DEFAULT_LR:
        if width is None or d_model <= width:
            return lr
    return DEFAULT_LR[-1][1]


def accumulate_gradients(
    model: torch.nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    micro_batch_size: int,
    aux_weight: float,
    device: torch.device,
    precision: str,
    return_logits: bool = False,
    feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """Backpropagate ``loss_fn(model(x), y) + aux_weight * MoE aux loss`` over micro-batches of
    ``micro_batch_size`` windows, each weighted by its share of the batch, so the accumulated gradients are those
    of the batch mean (the MoE balancing loss is per micro-batch). Returns the batch loss (and with
    ``return_logits`` the detached logits of the batch). ``feature_stats``: per-window (mean, std) of the
    pooled features (:mod:`neuript.inference.featnorm`), split with the batch."""
    kept: list[torch.Tensor] = []

    def loss_of(xs, ys, *stats):
        with autocast(device, precision):
            logits = model(xs, feature_stats=tuple(stats) if stats else None)
            kept.append(logits.detach().float())
            return loss_fn(logits, ys) + aux_weight * model.aux_loss, {}

    tensors = (x, y) + (tuple(feature_stats) if feature_stats is not None else ())
    loss = backward_in_micro_batches(tensors, micro_batch_size, loss_of)[0]
    return (loss, torch.cat(kept)) if return_logits else loss


def crop_length(crop_s: float | None, *, sfreq: float, n_times: int, multiple: int) -> int | None:
    """Samples of a ``crop_s``-second training crop, rounded down to a multiple of ``multiple`` (the encoder's
    time reduction); ``None`` when ``crop_s`` is ``None``. A crop not shorter than the window is refused."""
    if crop_s is None:
        return None
    n = int(round(crop_s * sfreq)) // multiple * multiple
    if n < multiple or n >= n_times:
        raise OptionError(f"--train-crop {crop_s:g} s is {round(crop_s * sfreq)} samples at {sfreq:g} Hz; it must lie "
                          f"between {multiple} samples ({multiple / sfreq:g} s) and the window "
                          f"({n_times} samples = {n_times / sfreq:g} s, exclusive)")
    return n


def random_crop(x: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``length``-sample crop of every window of ``x`` (batch, channels, time), one offset per window."""
    n, c, t = x.shape
    start = torch.randint(0, t - length + 1, (n,), generator=generator, device=x.device)
    idx = (start[:, None] + torch.arange(length, device=x.device))[:, None, :].expand(n, c, length)
    return torch.gather(x, 2, idx)


def _predicted_class(logits: torch.Tensor) -> np.ndarray:
    """Class index per row of raw logits (a single logit: positive when > 0)."""
    logits = logits.float().cpu()
    return (logits[:, 0] > 0).long().numpy() if logits.shape[1] == 1 else logits.argmax(1).numpy()



class BalancedLoss(torch.nn.Module):
    """The balanced fine-tuning loss (spec §5): logit adjustment by the class prior, with label smoothing.

    During training the logits are shifted so that the raw logits used at inference estimate balanced
    (prior-free) class scores.

    * Binary (one logit ``z``): ``BCE(z + tau * log(pi / (1 - pi)), y_smooth)`` — the paper's balanced BCE.
    * ``multiclass="sigmoid"`` (the reference code, C > 2): every logit ``z_c`` shifted by
      ``tau * log(pi_c / (1 - pi_c))``, independent sigmoids: ``C * mean over (batch, class) of
      BCE(z'_c, smoothed one-hot_c)``.
    * ``multiclass="softmax"``: logit-adjusted cross-entropy (Menon et al., 2021), logits shifted by
      ``tau * log(pi_c)``.

    Label smoothing ``e`` moves every binary target to ``y (1 - e) + e / 2``; the softmax form uses torch's.
    """

    def __init__(self, prior: np.ndarray, *, tau: float = 1.0, label_smoothing: float = 0.0, binary: bool,
                 multiclass: str = "softmax"):
        super().__init__()
        if multiclass not in ("sigmoid", "softmax"):
            raise ValueError(f"multiclass must be 'sigmoid' or 'softmax', got {multiclass!r}")
        prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-6, 1.0)
        prior = prior / prior.sum()
        self.binary, self.multiclass = binary, multiclass
        self.label_smoothing = label_smoothing
        if binary:
            shift = torch.tensor([tau * math.log(prior[1] / prior[0])], dtype=torch.float32)
        elif multiclass == "sigmoid":
            p = np.clip(prior, 1e-6, 1 - 1e-6)
            shift = torch.as_tensor(tau * np.log(p / (1 - p)), dtype=torch.float32)
        else:
            shift = torch.as_tensor(tau * np.log(prior), dtype=torch.float32)
        self.register_buffer("shift", shift)

    def _smooth(self, y: torch.Tensor) -> torch.Tensor:
        return y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing if self.label_smoothing else y

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float() + self.shift
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits.squeeze(-1), self._smooth(target.float()))
        if self.multiclass == "sigmoid":
            onehot = F.one_hot(target.long(), logits.shape[-1]).float()
            return logits.shape[-1] * F.binary_cross_entropy_with_logits(logits, self._smooth(onehot))
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


#: ``--loss`` → (prior shift on, multi-class form)
LOSSES = {"balanced": (True, "sigmoid"), "balanced_softmax": (True, "softmax"), "ce": (False, "softmax")}


@dataclass
class FinetuneData:
    train: Any
    val: Any
    test: Any
    label_names: dict[int, str]
    n_classes: int
    n_outputs: int
    prior: np.ndarray
    ch_names: list[str]
    positions: np.ndarray
    sfreq: float
    n_times: int
    preprocessing: dict[str, Any]
    fingerprint: str


def load_finetune_data(cfg) -> FinetuneData:
    """Datasets of the train/val/test splits of ``cfg.stores`` and what the model needs to know about them."""
    import warnings

    from neuript.data.loader import WindowDataset

    if not cfg.stores:
        raise ValueError("give at least one store to fine-tune on")
    opts = dataset_options(cfg)
    train = WindowDataset(list(cfg.stores), split=cfg.train_split, **opts)
    opts["preemphasis_gain"] = train.preemphasis_gain  # validation and test data are filtered alike
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty test split is reported by the evaluation
        val = WindowDataset(list(cfg.stores), split=cfg.val_split, **opts)
        test = WindowDataset(list(cfg.stores), split=cfg.test_split, **opts)
    if len(train) == 0:
        raise ValueError(f"split {cfg.train_split!r} of {list(cfg.stores)} has no windows (for stores without a "
                         "train/val/test split, cross-validate: --cv loso or --cv kfold:K)")
    if len(val) == 0:
        raise ValueError(
            f"split {cfg.val_split!r} of {list(cfg.stores)} has no windows; early stopping needs a validation "
            "split (check that the validation subjects are in the source folder)"
        )
    return finetune_data_of(train, val, test if len(test) else None, what=f"split {cfg.train_split!r}")


def finetune_data_of(train, val, test, *, what: str = "the training windows") -> FinetuneData:
    """:class:`FinetuneData` of given train / validation / (optional) test datasets, checked for labels, classes
    and a single montage; ``what`` names the training windows in the error messages."""
    labels = train.labels
    if (labels < 0).any():
        raise ValueError(f"{int((labels < 0).sum())} training windows have no label (-1); "
                         "fine-tuning needs a labelled store (e.g. `neuript prepare eegmat`)")
    label_names = {}
    for st in train.stores:
        label_names.update(st.label_names)
    n_classes = max(len(label_names), int(labels.max()) + 1)
    label_names = {i: label_names.get(i, str(i)) for i in range(n_classes)}
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        missing = [label_names[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"classes {missing} have no windows in {what}")
    montages = train.montages
    if len(montages) != 1:
        raise ValueError(
            f"fine-tuning data mixes {len(montages)} montages ({montages}); the IILP head needs one channel layout. "
            "Prepare the stores with the same montage (e.g. --set montage=tcp)."
        )
    info = train.montage_info(montages[0])
    preprocessing = train.stores[0].config
    return FinetuneData(
        train=train, val=val, test=test, label_names=label_names, n_classes=n_classes,
        n_outputs=1 if n_classes == 2 else n_classes, prior=counts / counts.sum(), ch_names=info["ch_names"],
        positions=info["positions"], sfreq=train.sfreq, n_times=train.n_times, preprocessing=preprocessing,
        fingerprint=fingerprint([store_fingerprint(s.path) for s in train.stores]),
    )


def build_classifier_for(cfg: "FinetuneConfig", data: FinetuneData) -> torch.nn.Module:
    """A fresh classifier for ``data``: the pretrained encoder when ``cfg.pretrained`` is set, else random."""
    from neuript.model import NeurIPT
    from neuript.model.classifier import FREE_ENCODER_SETTINGS
    from neuript.model.presets import preset_config

    common = dict(n_outputs=data.n_outputs, n_chans=len(data.ch_names), n_times=data.n_times, sfreq=data.sfreq,
                  ch_names=data.ch_names, positions=np.asarray(data.positions).tolist(), groups=cfg.groups,
                  pool=cfg.pool)
    if cfg.pretrained:
        free = {k: v for k, v in cfg.model_overrides.items() if k in FREE_ENCODER_SETTINGS}
        return NeurIPT.from_pretrain(load_pretrained(cfg.pretrained), encoder_overrides=free, **common)
    return NeurIPT(**common, **preset_config(cfg.preset, cfg.model_overrides))


def _check_memory(cfg: "FinetuneConfig", model, loss_fn, data: FinetuneData, device, micro: int, *,
                  n_times: int | None = None) -> None:
    """Estimate the step's peak memory from two small forward passes (``n_times`` samples per window: the
    training crop, else the whole window) and refuse a run that cannot fit."""
    from neuript.train.memory import check_training_memory, estimate_training_memory, release_freed_activations

    release_freed_activations(device, grad_checkpointing=model.encoder.grad_checkpointing)
    n_chans, n_times = len(data.ch_names), n_times or data.n_times

    def loss_of(n: int) -> torch.Tensor:
        x = torch.randn(n, n_chans, n_times, device=device)
        y = torch.zeros(n, dtype=torch.long, device=device)
        with autocast(device, cfg.precision):
            return loss_fn(model(x), y) + cfg.aux_weight * model.aux_loss

    est = estimate_training_memory(model, loss_of, batch_size=cfg.batch_size, micro_batch_size=micro,
                                   optimizer_state=cfg.optimizer_state, device=device)
    log.info("estimated peak memory of a training step: %s", est.describe())
    check_training_memory(est, command="neuript finetune")


def _set_encoder_trainable(model: torch.nn.Module, trainable: bool) -> None:
    head = set(id(p) for p in model.final_layer.parameters())
    for p in model.parameters():
        if id(p) not in head:
            p.requires_grad_(trainable)


def _train_one_seed(cfg: FinetuneConfig, seed: int, data: FinetuneData, device: torch.device,
                    out: Path, *, extra_provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    from sklearn.metrics import balanced_accuracy_score

    from neuript.data.loader import make_loader
    from neuript.evaluate.metrics import collapse_warning, compute_metrics

    seed_everything(seed)
    model = build_classifier_for(cfg, data).to(device)
    # plain cross-entropy = the balanced loss without the prior shift (tau = 0)
    shifted, multiclass = LOSSES[cfg.loss]
    loss_fn = BalancedLoss(data.prior, tau=cfg.tau if shifted else 0.0, label_smoothing=cfg.label_smoothing,
                           binary=data.n_outputs == 1, multiclass=multiclass).to(device)

    loader = make_loader(data.train, batch_size=cfg.batch_size, shuffle=True, seed=seed,
                         num_workers=cfg.num_workers, drop_last=len(data.train) > cfg.batch_size)
    steps_per_epoch = len(loader) if cfg.max_train_batches is None else min(len(loader), cfg.max_train_batches)
    micro = cfg.micro_batch_size or cfg.batch_size  # validated by finetune()
    crop = crop_length(cfg.train_crop_s, sfreq=data.sfreq, n_times=data.n_times,
                       multiple=math.prod(model.encoder.cfg.merge_factors))
    _check_memory(cfg, model, loss_fn, data, device, micro, n_times=crop)
    head_params = list(model.final_layer.parameters())
    head_ids = set(id(p) for p in head_params)
    body_params = [p for p in model.parameters() if id(p) not in head_ids]
    lr = cfg.lr if cfg.lr is not None else default_lr(model.encoder.cfg.d_model)
    head_lr = cfg.head_lr if cfg.head_lr is not None else lr
    optimizer = make_adamw(
        [{"params": body_params, "lr": lr}, {"params": head_params, "lr": head_lr}],
        lr=lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), state=cfg.optimizer_state,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[lr, head_lr], total_steps=max(cfg.epochs * steps_per_epoch, 1),
        pct_start=cfg.pct_start, anneal_strategy="cos", cycle_momentum=False,
    )

    best = {"score": -math.inf, "epoch": -1, "state": None}
    history, steps_log = [], []
    bad_epochs = 0
    seed_dir = out / f"seed{seed}"
    tb = None
    if cfg.tensorboard:
        from neuript.runtime import tensorboard_writer

        tb = tensorboard_writer(seed_dir / "tensorboard")
    step = 0
    where = f"{out.name} " if cfg.cv else ""  # a fold's progress lines name the fold
    progress = Progress(total=cfg.epochs * steps_per_epoch * cfg.batch_size, desc=f"finetune {where}seed {seed}")
    train_keys = group_keys(data.train, cfg.feature_norm) if cfg.feature_norm != "none" else None
    for epoch in range(cfg.epochs):
        _set_encoder_trainable(model, epoch >= cfg.freeze_epochs)
        stats = None
        if train_keys is not None:  # each training subject's feature statistics under the current weights
            stats = group_feature_stats(model, data.train, cfg.feature_norm, device=device, precision=cfg.precision,
                                        max_per_group=cfg.feature_norm_windows, keys=train_keys,
                                        rng=np.random.default_rng([seed, epoch]), batch_size=cfg.batch_size)
        model.train()
        loader.batch_sampler.set_epoch(epoch)
        losses, train_pred, train_true = [], [], []
        for b, batch in enumerate(loader):
            if b >= steps_per_epoch:
                break
            x = batch["x"].to(device)
            if crop is not None:
                x = random_crop(x, crop)
            y = batch["label"].to(device)
            fs = None
            if stats is not None:
                fs = tuple(t.to(device) for t in batch_stats(stats, train_keys[batch["index"].numpy()]))
            optimizer.zero_grad(set_to_none=True)
            loss, logits = accumulate_gradients(model, loss_fn, x, y, micro_batch_size=micro,
                                                aux_weight=cfg.aux_weight, device=device, precision=cfg.precision,
                                                return_logits=True, feature_stats=fs)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss)
            step += 1
            steps_log.append({"step": step, "epoch": epoch, "loss": float(loss), "lr": scheduler.get_last_lr()[0]})
            if tb is not None:
                tb.add_scalar("train/loss", float(loss), step)
                tb.add_scalar("train/lr", steps_log[-1]["lr"], step)
            train_pred.append(_predicted_class(logits))
            train_true.append(y.cpu().numpy())
            progress.update(x.shape[0], loss=losses[-1])
        val_probs, val_labels, _, val_logits = predict_dataset(model, data.val, batch_size=cfg.batch_size,
                                                               device=device, precision=cfg.precision,
                                                               return_logits=True, feature_norm=cfg.feature_norm)
        val_metrics = compute_metrics(val_labels, val_probs, n_classes=data.n_classes)
        score = val_metrics["balanced_accuracy"]
        with torch.no_grad():
            val_loss = float(loss_fn(torch.from_numpy(val_logits).to(device),
                                     torch.as_tensor(val_labels, device=device)))
        train_bacc = (float(balanced_accuracy_score(np.concatenate(train_true), np.concatenate(train_pred)))
                      if train_true else math.nan)
        collapsed = collapse_warning(val_probs.argmax(1), [data.label_names[i] for i in range(data.n_classes)])
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                        "val_loss": val_loss, "train_balanced_accuracy": train_bacc,
                        "val_balanced_accuracy": score, "val_auroc": val_metrics.get("auroc"),
                        "lr": scheduler.get_last_lr()[0], "val_collapsed": collapsed is not None})
        seed_dir.mkdir(parents=True, exist_ok=True)
        # per-step and per-epoch logs as the run goes (atomic: a reader never sees half a file)
        atomic_write_text(seed_dir / "log.csv", pd.DataFrame(steps_log).to_csv(index=False))
        atomic_write_text(seed_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
        if tb is not None:
            for k in ("train_loss", "val_loss", "train_balanced_accuracy", "val_balanced_accuracy", "val_auroc"):
                if history[-1][k] is not None:
                    tb.add_scalar(f"epoch/{k}", history[-1][k], epoch)
            tb.flush()
        progress.write(f"seed {seed} epoch {epoch}: train loss {history[-1]['train_loss']:.4f}  "
                       f"val loss {val_loss:.4f}  train balanced accuracy {train_bacc:.4f}  "
                       f"val balanced accuracy {score:.4f}" + (f"  WARNING: {collapsed}" if collapsed else ""))
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                progress.write(f"seed {seed}: early stop at epoch {epoch} (best epoch {best['epoch']})")
                break
    progress.close()
    if tb is not None:
        tb.close()
    model.load_state_dict(best["state"])
    provenance = {
        "seed": seed,
        "best_epoch": best["epoch"],
        "config": cfg.to_dict(),
        "store_config": {k: v for k, v in data.preprocessing.items() if k != "preprocess"},
        "data_fingerprint": data.fingerprint,
        "versions": versions(), "precision_used": resolve_precision(cfg.precision, device),
        "saved": now_iso(),
    }
    if cfg.pretrained:
        provenance["pretrained_from"] = str(cfg.pretrained)
    provenance.update(extra_provenance or {})
    model.save_pretrained(
        seed_dir / "model", kind="finetune", label_names=data.label_names,
        preprocessing=data.preprocessing.get("preprocess", data.preprocessing),
        input_transform={"name": "alaw", "A": 0.25, "align": cfg.align, "align_by": cfg.align_by,
                         "align_scale_uv": data.train.align_scale_uv, "preemphasis": data.train.preemphasis,
                         "preemphasis_gain": data.train.preemphasis_gain, "feature_norm": cfg.feature_norm},
        provenance={**provenance, "lr": lr},
        metrics={"best_val_balanced_accuracy": best["score"]},
    )
    write_json_atomic(seed_dir / "history.json", history)
    atomic_write_text(seed_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
    return {"seed": seed, "best_epoch": best["epoch"], "best_val_balanced_accuracy": best["score"]}


def finetune(cfg: FinetuneConfig) -> Path:
    """Fine-tune one model per seed (per fold with ``cfg.cv``) and evaluate them; returns the run directory."""
    from neuript.inference.evaluate_run import evaluate_run

    check_memory_options(micro_batch_size=cfg.micro_batch_size, optimizer_state=cfg.optimizer_state)
    from neuript.data.align import ALIGN_BY, ALIGNMENTS
    from neuript.runtime import check_choice, check_positive

    check_choice("align", cfg.align, ALIGNMENTS)
    check_choice("align_by", cfg.align_by, ALIGN_BY)
    check_choice("feature_norm", cfg.feature_norm, FEATURE_NORMS)
    check_choice("pool", cfg.pool, POOLINGS)
    check_positive("feature_norm_windows", cfg.feature_norm_windows, integer=True)
    if not 0.0 <= cfg.preemphasis <= 1.0:
        raise OptionError(f"--preemphasis must lie in [0, 1] (0: off, 1: the first difference), got {cfg.preemphasis}")
    check_choice("loss", cfg.loss, tuple(LOSSES))
    check_positive("lr", cfg.lr, allow_none=True)
    check_positive("train-crop", cfg.train_crop_s, allow_none=True)
    check_positive("epochs", cfg.epochs, integer=True)
    check_positive("batch_size", cfg.batch_size, integer=True)
    if cfg.cv is not None:
        from neuript.evaluate.folds import parse_cv

        parse_cv(cfg.cv)  # a bad --cv fails before any data is read
    device = resolve_device(cfg.device)
    _check_pretrained_path(cfg.pretrained)
    out = Path(cfg.out)
    _check_run_kind(out, cv=cfg.cv is not None)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.cv is not None:
        _finetune_cv(cfg, device, out)
        evaluate_run(out, device=cfg.device)
        return out
    data = load_finetune_data(cfg)
    _check_same_run(out, cfg, data.fingerprint)
    write_json_atomic(out / "run.json", {
        "kind": "finetune",
        "config": cfg.to_dict(),
        "data_fingerprint": data.fingerprint,
        **_split_sizes(data),
        "label_names": data.label_names,
        "versions": versions(), "precision_used": resolve_precision(cfg.precision, device),
        "started": now_iso(),
    })
    for seed in cfg.seeds:
        done = out / f"seed{seed}" / "model"
        if is_saved_model(done):
            log.info("seed %d already finished in %s; skipping (delete it to retrain)", seed, done)
            continue
        _train_one_seed(cfg, seed, data, device, out)
    evaluate_run(out, device=cfg.device)
    return out


def _check_pretrained_path(pretrained) -> None:
    """A mistyped ``--pretrained`` fails before the run directory is written (a Hub id ``owner/name`` is
    resolved when it is loaded)."""
    if pretrained is None:
        return
    text = str(pretrained)
    hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if not Path(text).exists() and not hub_id:
        raise FileNotFoundError(f"--pretrained {text}: no such pretraining run. Point --pretrained at the run "
                                "directory written by `neuript pretrain` (or its model/ folder, or a Hugging Face "
                                "Hub id owner/name)")


def _split_sizes(data: FinetuneData) -> dict[str, dict[str, int]]:
    """Windows and subjects of the train / val / test datasets (``run.json``)."""
    sets = (("train", data.train), ("val", data.val), ("test", data.test))
    return {"n_windows": {k: len(ds) if ds is not None else 0 for k, ds in sets},
            "n_subjects": {k: int(ds.windows["subject"].nunique()) if ds is not None else 0 for k, ds in sets}}


#: settings that may change between the runs of one fine-tuning directory (more seeds, another machine)
_RESUMABLE_KEYS = ("seeds", "device", "num_workers", "out", "overwrite", "tensorboard")


def _check_same_run(out: Path, cfg: FinetuneConfig, data_fingerprint: str) -> None:
    """A run directory whose finished seeds came from other data or settings is refused (their models would be
    reported together with the new ones), unless ``cfg.overwrite``, which removes them first."""
    import shutil

    done = [d for d in sorted(out.glob("seed*")) if is_saved_model(d / "model")]
    run_json = out / "run.json"
    if not done or not run_json.exists():
        return
    try:
        before = json.loads(run_json.read_text())
    except ValueError:
        before = {}
    old = {k: v for k, v in (before.get("config") or {}).items() if k not in _RESUMABLE_KEYS}
    new = {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE_KEYS}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if before.get("data_fingerprint") != data_fingerprint:
        changed.insert(0, "data (the stores' contents)")
    if not changed:
        return
    if not cfg.overwrite:
        raise FileExistsError(
            f"{out} holds {len(done)} finished model(s) fine-tuned with other {', '.join(changed[:6])}"
            f"{' ...' if len(changed) > 6 else ''}; use another --out, or --overwrite to replace that run")
    log.warning("--overwrite: removing the earlier run in %s (%s changed)", out, ", ".join(changed[:6]))
    for d in out.glob("seed*"):
        shutil.rmtree(d)
    for f in out.glob("report.*"):
        f.unlink()


def _check_run_kind(out: Path, *, cv: bool) -> None:
    """Refuse to mix a fixed-split run and a cross-validation run in one directory (their models would mix)."""
    if cv and any(is_saved_model(d / "model") for d in out.glob("seed*")):
        raise ValueError(f"{out} holds a fixed-split fine-tuning run (seed*/model); cross-validate into another "
                         "--out")
    if not cv and (out / "folds.json").exists():
        raise ValueError(f"{out} holds a cross-validation run (folds.json); pass the same --cv to resume it, or "
                         "use another --out")


def _finetune_cv(cfg: FinetuneConfig, device: torch.device, out: Path) -> None:
    """Subject-wise cross-validation: the folds of the stores' pool, one fine-tuning per fold and seed."""
    from neuript.evaluate.folds import fold_indices, load_pool, make_folds

    if not cfg.stores:
        raise ValueError("give at least one store to fine-tune on")
    pool, keys, what = load_pool(cfg.stores, train_split=cfg.train_split, val_split=cfg.val_split,
                                 test_split=cfg.test_split, **dataset_options(cfg))
    folds = make_folds(pool.windows, cv=cfg.cv, val_fraction=cfg.cv_val_fraction)
    subjects, counts = np.unique(keys, return_counts=True)
    assignment = {
        "cv": cfg.cv,
        "pool": what,
        "val_fraction": cfg.cv_val_fraction,
        "inner_validation": "round(val_fraction * n) of each fold's n training subjects (at least one, leaving at "
                            "least one), first in SHA-1 order of their ids, held out whole for early stopping",
        "subjects": {str(s): int(n) for s, n in zip(subjects, counts)},
        "folds": [f.to_dict() for f in folds],
    }
    folds_path = out / "folds.json"
    if folds_path.exists():
        before = json.loads(folds_path.read_text())
        if before.get("folds") != assignment["folds"] or before.get("cv") != cfg.cv:
            raise ValueError(f"{out} holds a cross-validation run with other folds ({before.get('cv')}, "
                             f"{len(before.get('folds', []))} folds; see {folds_path}): use another --out, or "
                             "delete it to start over")
    write_json_atomic(folds_path, assignment)
    datas = []
    for fold in folds:
        part = {k: pool.select(fold_indices(keys, getattr(fold, f"{k}_subjects")))
                for k in ("inner_train", "inner_val", "test")}
        datas.append(finetune_data_of(part["inner_train"], part["inner_val"], part["test"],
                                      what=f"the training subjects of {fold.name}"))
    write_json_atomic(out / "run.json", {
        "kind": "finetune-cv",
        "config": cfg.to_dict(),
        "data_fingerprint": datas[0].fingerprint,
        "cv": assignment,
        "label_names": datas[0].label_names,
        "versions": versions(), "precision_used": resolve_precision(cfg.precision, device),
        "started": now_iso(),
    })
    for fold, data in zip(folds, datas):
        fdir = out / fold.name
        fdir.mkdir(exist_ok=True)
        write_json_atomic(fdir / "run.json", {
            "kind": "finetune", "config": cfg.to_dict(), "fold": fold.to_dict(), "pool": what,
            "data_fingerprint": data.fingerprint, **_split_sizes(data), "label_names": data.label_names,
            "versions": versions(), "precision_used": resolve_precision(cfg.precision, device), "started": now_iso(),
        })
        for seed in cfg.seeds:
            done = fdir / f"seed{seed}" / "model"
            if is_saved_model(done):
                log.info("%s seed %d already finished in %s; skipping (delete it to retrain)", fold.name, seed, done)
                continue
            _train_one_seed(cfg, seed, data, device, fdir,
                            extra_provenance={"fold": fold.to_dict(), "cv": cfg.cv})
