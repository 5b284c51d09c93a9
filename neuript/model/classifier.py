"""NeurIPT fine-tuning model: encoder + IILP head, braindecode-style constructor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .encoder import EncoderConfig, NeurIPTEncoder
from .heads import IILPHead, group_matrix
from .io import chs_info_of, load_model, locate_artifact, push_to_hub, save_artifact
from .montage import as_positions, resolve_groups, resolve_positions

__all__ = ["NeurIPT", "split_encoder_kwargs", "FREE_ENCODER_SETTINGS"]

#: encoder settings that may differ from a pretrained encoder's (they change no tensor shape)
FREE_ENCODER_SETTINGS = ("dropout", "attn_dropout", "gate_noise", "grad_checkpointing")


def split_encoder_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """Split keyword arguments into EncoderConfig fields and the rest."""
    fields = EncoderConfig.fields()
    return {k: v for k, v in kwargs.items() if k in fields}, {k: v for k, v in kwargs.items() if k not in fields}


class NeurIPT(nn.Module):
    """NeurIPT classifier / regressor for EEG windows (B, C, T).

    Parameters
    ----------
    n_outputs : int
        Number of logits (1 for a binary task with a single logit).
    n_chans : int, optional
        Number of channels; checked against the channel description when both are given.
    n_times : int, optional
        Window length in samples (recorded in the config; any length works at call time).
    sfreq : float, optional
        Sampling rate in Hz (recorded in the config; the model itself has no notion of seconds).
    chs_info : list of dict, optional
        MNE ``info["chs"]``: names and, where finite, 3D locations of the channels.
    ch_names : list of str, optional
        Channel names (electrodes or bipolar pairs ``"A-B"``), located with :mod:`neuript.electrodes`.
    positions : array-like (C, 3), optional
        Electrode positions in metres (MNE head frame); overrides ``chs_info`` / ``ch_names`` locations.
    groups : str or list of list of int
        IILP channel groups: explicit index lists or a :func:`neuript.electrodes.lobe_groups` scheme
        (default ``"functional"``; ``"mean"`` = one group of all channels).
    n_pooled_blocks : int, optional
        The head pools the embedding plus the last ``n_pooled_blocks`` block outputs (default: all blocks).
    pool : {"mean", "meanstd"}
        IILP statistics over time: the mean (the paper's head) or the mean and the log standard deviation
        (:class:`~neuript.model.heads.IILPHead`).
    input_window_seconds : float, optional
        Window length in seconds; gives ``n_times`` with ``sfreq`` (braindecode's convention).
    **encoder_kwargs
        :class:`~neuript.model.encoder.EncoderConfig` fields (``d_model``, ``n_heads``, ``mode``, ...).

    Notes
    -----
    ``forward(x, *, positions=None, groups=None, return_features=False, feature_stats=None)``: ``positions`` /
    ``groups`` switch to
    another montage for this call (``groups`` must keep the number of groups the head was built with). With
    ``positions`` of another channel count and no ``groups``, the construction-time scheme (e.g.
    ``"functional"``) is re-applied to the new positions. ``forward == forward_head(forward_features(x))``
    (timm's contract); :attr:`aux_loss` is the *unweighted* MoE auxiliary loss of the last forward.
    ``feature_stats=(mean, std)`` standardises the flattened pooled features before the linear layer (per-subject
    feature normalisation, :mod:`neuript.inference.featnorm`).

    The braindecode attributes ``n_chans, n_outputs, n_times, sfreq, chs_info, input_window_seconds`` are
    readable and saved with the model; :attr:`metadata` carries what a saved model needs beyond its weights
    (label names, preprocessing, input transform, provenance: see :mod:`neuript.model.io`).
    """

    def __init__(
        self,
        *,
        n_outputs: int = 2,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: Sequence[dict] | None = None,
        ch_names: Sequence[str] | None = None,
        positions: Any = None,
        groups: str | Sequence[Sequence[int]] | None = "functional",
        n_pooled_blocks: int | None = None,
        pool: str = "mean",
        input_window_seconds: float | None = None,
        **encoder_kwargs,
    ) -> None:
        super().__init__()
        unknown = set(encoder_kwargs) - EncoderConfig.fields()
        if unknown:
            raise TypeError(f"unknown NeurIPT arguments: {sorted(unknown)}")
        if n_times is None and input_window_seconds is not None and sfreq is not None:
            n_times = int(round(input_window_seconds * sfreq))
        pos, names = resolve_positions(n_chans=n_chans, chs_info=chs_info, ch_names=ch_names, positions=positions)
        if n_chans is None:
            n_chans = pos.shape[0] if pos is not None else (len(names) if names is not None else None)
        if n_chans is None:
            raise ValueError("give n_chans or a channel description (chs_info, ch_names or positions)")
        group_list = resolve_groups(groups, n_chans=n_chans, ch_names=names, positions=pos)

        self.encoder = NeurIPTEncoder(EncoderConfig(**encoder_kwargs))
        n_blocks = self.encoder.n_blocks
        self.n_pooled_blocks = n_blocks if n_pooled_blocks is None else int(n_pooled_blocks)
        if not 0 <= self.n_pooled_blocks <= n_blocks:
            raise ValueError(f"n_pooled_blocks must be in 0..{n_blocks}")
        self.n_outputs, self.n_chans, self.n_times, self.sfreq = int(n_outputs), n_chans, n_times, sfreq
        self.ch_names = names
        self.groups = group_list
        self.group_scheme = groups if isinstance(groups, str) or groups is None else None
        self.metadata: dict[str, Any] = {}
        self.register_buffer("positions", pos if pos is not None else torch.empty(0, 3), persistent=False)
        self.register_buffer("group_weights", group_matrix(group_list, n_chans), persistent=False)
        self.pool = pool
        self.final_layer = IILPHead(
            d_model=self.encoder.cfg.d_model,
            n_groups=len(group_list),
            n_pooled=self.n_pooled_blocks + 1,
            n_outputs=self.n_outputs,
            pool=pool,
        )
        self._aux_loss: torch.Tensor | None = None

    # ------------------------------------------------------------------ config / io
    @property
    def config(self) -> dict:
        """JSON-serialisable constructor arguments (what :meth:`save_pretrained` writes)."""
        return dict(
            model_type="NeurIPT",
            n_outputs=self.n_outputs,
            n_chans=self.n_chans,
            n_times=self.n_times,
            sfreq=self.sfreq,
            ch_names=self.ch_names,
            positions=self.positions.tolist() if self.positions.numel() else None,
            groups=self.groups,
            n_pooled_blocks=self.n_pooled_blocks,
            pool=self.pool,
            **self.encoder.cfg.to_dict(),
        )

    @property
    def input_window_seconds(self) -> float | None:
        """Window length in seconds (``n_times / sfreq``), braindecode's attribute."""
        return self.n_times / self.sfreq if self.n_times and self.sfreq else None

    @property
    def chs_info(self) -> list[dict] | None:
        """MNE-style channel descriptions (``ch_name``, ``loc`` with the position in metres, ``kind``)."""
        return chs_info_of(self.ch_names, self.positions)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute encoder sub-layers in the backward pass (less activation memory, ~30 % more time)."""
        self.encoder.set_grad_checkpointing(enable)

    def save_pretrained(self, directory: str | os.PathLike, **metadata) -> Path:
        """Write the model artifact (``model.safetensors``, ``config.json``, ``neuript.json``; each atomic).

        ``metadata`` (``label_names``, ``preprocessing``, ``input_transform``, ``provenance``, ``metrics``,
        ``kind``) updates :attr:`metadata` before writing; see :func:`neuript.model.io.save_artifact`."""
        self.metadata.update(metadata)
        return save_artifact(self, directory)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, local_files_only: bool = False,
                        **overrides) -> "NeurIPT":
        """Load a model directory, a fine-tuning run directory (its first seed) or a Hugging Face Hub
        repository id (``revision``, ``cache_dir``, ``local_files_only`` as in ``huggingface_hub``);
        ``overrides`` replace config entries (e.g. ``mode="official"``, ``dropout=0``). Mismatching tensors
        raise a ``CheckpointMismatchError`` summarising the offending keys."""
        directory = locate_artifact(path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        return load_model(cls, directory, **overrides)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Upload the artifact with a model card to the Hugging Face Hub (see :func:`neuript.model.io.push_to_hub`)."""
        return push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrain(cls, pretrain_model: nn.Module, *, encoder_overrides: dict[str, Any] | None = None,
                      **kwargs) -> "NeurIPT":
        """Fine-tuning model with the encoder of a :class:`~neuript.model.pretrain.NeurIPTPretrain` — the one way
        to copy a pretrained encoder into a classifier.

        Encoder hyperparameters and the channel description default to those of ``pretrain_model``;
        ``encoder_overrides`` may change only regularisation settings (dropout, attention dropout, gate noise,
        gradient checkpointing), since the weights must fit. ``kwargs``: the classifier's own arguments
        (``n_outputs``, ``groups``, channel description, ...).
        """
        enc_cfg = pretrain_model.encoder.cfg.to_dict()
        bad = set(encoder_overrides or {}) - set(FREE_ENCODER_SETTINGS)
        if bad:
            raise ValueError(f"the pretrained encoder fixes {sorted(bad)}; only {list(FREE_ENCODER_SETTINGS)} "
                             "may be overridden")
        enc_cfg.update(encoder_overrides or {})
        defaults: dict[str, Any] = dict(enc_cfg)
        if pretrain_model.positions.numel() and not any(k in kwargs for k in ("positions", "chs_info", "ch_names")):
            defaults["positions"] = pretrain_model.positions.tolist()
            defaults["ch_names"] = pretrain_model.ch_names
        for key in ("n_times", "sfreq"):
            if kwargs.get(key) is None and getattr(pretrain_model, key, None) is not None:
                defaults[key] = getattr(pretrain_model, key)
        defaults.update(kwargs)
        model = cls(**defaults)
        model.encoder.load_state_dict(pretrain_model.encoder.state_dict())
        model.metadata["provenance"] = {"pretrained_from": dict(pretrain_model.metadata.get("provenance") or {})}
        return model

    # ------------------------------------------------------------------ head
    def reset_head(self, n_outputs: int, *, groups: str | Sequence[Sequence[int]] | None = None) -> None:
        """Replace the IILP head with a fresh one (new number of outputs and optionally new groups)."""
        if groups is not None:
            self.groups = resolve_groups(
                groups, n_chans=self.n_chans, ch_names=self.ch_names, positions=self.positions if self.positions.numel() else None
            )
            self.group_weights = group_matrix(self.groups, self.n_chans, device=self.group_weights.device)
        ref = self.final_layer.linear.weight
        self.n_outputs = int(n_outputs)
        self.final_layer = IILPHead(
            d_model=self.encoder.cfg.d_model,
            n_groups=len(self.groups),
            n_pooled=self.n_pooled_blocks + 1,
            n_outputs=self.n_outputs,
            pool=self.pool,
        ).to(device=ref.device, dtype=ref.dtype)

    @property
    def aux_loss(self) -> torch.Tensor:
        """Unweighted sum of the MoE auxiliary losses of the last forward (the training loop weights it)."""
        if self._aux_loss is None:
            return torch.zeros((), device=self.group_weights.device)
        return self._aux_loss

    def pooled_features(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The encoder outputs the head reads, in head order: the embedding, then the last
        ``n_pooled_blocks`` block outputs from the deepest backwards (the reference code's order)."""
        blocks = list(features[1:])
        chosen = blocks[len(blocks) - self.n_pooled_blocks :] if self.n_pooled_blocks else []
        return [features[0]] + chosen[::-1]

    # ------------------------------------------------------------------ forward
    def _montage(self, x: torch.Tensor, positions: Any, groups: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Electrode positions (C, 3) and group weights (G, C) for this call."""
        if positions is not None:
            pos = as_positions(positions).to(x.device)
        elif self.positions.numel():
            pos = self.positions
        else:
            raise ValueError("no electrode positions: build the model with chs_info / ch_names / positions "
                             "or pass positions= to forward")
        if pos.shape[0] != x.shape[1]:
            raise ValueError(f"input has {x.shape[1]} channels but {pos.shape[0]} electrode positions")
        if groups is not None:
            weights = group_matrix(
                resolve_groups(groups, n_chans=x.shape[1], positions=pos), x.shape[1], device=x.device
            )
        elif positions is not None and x.shape[1] != self.n_chans:
            if self.group_scheme is None:
                raise ValueError("another montage at call time needs groups= as well (explicit groups were "
                                 "given at construction)")
            weights = group_matrix(
                resolve_groups(self.group_scheme, n_chans=x.shape[1], positions=pos), x.shape[1], device=x.device
            )
        else:
            weights = self.group_weights
        return pos, weights

    def _encode(self, x, positions, groups):
        pos, weights = self._montage(x, positions, groups)
        features, aux = self.encoder(x, pos)
        self._aux_loss = aux
        return features, weights

    def forward_features(self, x: torch.Tensor, *, positions: Any = None,
                         groups: str | Sequence[Sequence[int]] | None = None) -> torch.Tensor:
        """x (B, C, T) -> IILP-pooled features (B, n_pooled, n_groups, d): encoder, then the mean over time and
        over each channel group of every pooled encoder output."""
        features, weights = self._encode(x, positions, groups)
        return self.final_layer.pool(self.pooled_features(features), weights, flatten=False)

    def forward_head(self, features: torch.Tensor, *, pre_logits: bool = False,
                     feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Pooled features (B, n_pooled, n_groups, d) -> logits (B, n_outputs), or with ``pre_logits`` the
        flattened embedding (B, n_pooled * n_groups * d) the linear layer reads (what ``neuript embed`` saves).

        ``feature_stats``: ``(mean, std)``, each (F,) or (B, F) for the F flattened features, the statistics of
        the window's subject (or recording); the linear layer then reads ``(flat - mean) / std``. ``pre_logits``
        always returns the raw embedding."""
        flat = features.flatten(1)
        if pre_logits:
            return flat
        if feature_stats is not None:
            mean, std = feature_stats
            flat = ((flat.float() - mean.float()) / std.float()).to(flat.dtype)
        return self.final_layer.classify(flat)

    def forward(
        self,
        x: torch.Tensor,
        *,
        positions: Any = None,
        groups: str | Sequence[Sequence[int]] | None = None,
        return_features: bool = False,
        feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """x (B, C, T) -> logits (B, n_outputs) [, list of encoder outputs (B, C, L_i, d)]."""
        features, weights = self._encode(x, positions, groups)
        pooled = self.final_layer.pool(self.pooled_features(features), weights, flatten=False)
        logits = self.forward_head(pooled, feature_stats=feature_stats)
        return (logits, features) if return_features else logits
