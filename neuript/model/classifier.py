"""NeurIPT fine-tuning model: encoder + IILP head, braindecode-style constructor."""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import nn

from .encoder import EncoderConfig, NeurIPTEncoder
from .heads import IILPHead, group_matrix
from .io import load_model, save_checkpoint
from .montage import as_positions, resolve_groups, resolve_positions

__all__ = ["NeurIPT", "split_encoder_kwargs"]


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
    aux_loss_weight : float
        Factor applied to the summed MoE auxiliary losses in :attr:`aux_loss` (reference: 0.8).
    **encoder_kwargs
        :class:`~neuript.model.encoder.EncoderConfig` fields (``d_model``, ``n_heads``, ``mode``, ...).

    Notes
    -----
    ``forward(x, *, positions=None, groups=None, return_features=False)``: ``positions`` / ``groups`` switch to
    another montage for this call (``groups`` must keep the number of groups the head was built with). With
    ``positions`` of another channel count and no ``groups``, the construction-time scheme (e.g.
    ``"functional"``) is re-applied to the new positions.
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
        aux_loss_weight: float = 0.8,
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
        self.aux_loss_weight = aux_loss_weight
        self.register_buffer("positions", pos if pos is not None else torch.empty(0, 3), persistent=False)
        self.register_buffer("group_weights", group_matrix(group_list, n_chans), persistent=False)
        self.final_layer = IILPHead(
            d_model=self.encoder.cfg.d_model,
            n_groups=len(group_list),
            n_pooled=self.n_pooled_blocks + 1,
            n_outputs=self.n_outputs,
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
            aux_loss_weight=self.aux_loss_weight,
            **self.encoder.cfg.to_dict(),
        )

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``model.safetensors`` + ``config.json`` (atomic: temp file + ``os.replace``)."""
        save_checkpoint(directory, self.state_dict(), self.config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides) -> "NeurIPT":
        """Rebuild from :meth:`save_pretrained` output; ``overrides`` replace config entries
        (e.g. ``mode="official"``, ``dropout=0``). Mismatching tensors raise a ``CheckpointMismatchError``
        listing every offending key."""
        return load_model(cls, directory, **overrides)

    @classmethod
    def from_pretrain(cls, pretrain_model: nn.Module, **kwargs) -> "NeurIPT":
        """Fine-tuning model with the encoder of a :class:`~neuript.model.pretrain.NeurIPTPretrain`.

        Encoder hyperparameters and the channel description default to those of ``pretrain_model``.
        """
        enc_cfg = pretrain_model.encoder.cfg.to_dict()
        defaults: dict[str, Any] = dict(enc_cfg)
        if pretrain_model.positions.numel() and not any(k in kwargs for k in ("positions", "chs_info", "ch_names")):
            defaults["positions"] = pretrain_model.positions.tolist()
            defaults["ch_names"] = pretrain_model.ch_names
        defaults.update(kwargs)
        model = cls(**defaults)
        model.encoder.load_state_dict(pretrain_model.encoder.state_dict())
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
        ).to(device=ref.device, dtype=ref.dtype)

    @property
    def aux_loss(self) -> torch.Tensor:
        """Weighted MoE auxiliary loss of the last forward (``aux_loss_weight * sum``), ready to add to the loss."""
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
    def forward(
        self,
        x: torch.Tensor,
        *,
        positions: Any = None,
        groups: str | Sequence[Sequence[int]] | None = None,
        return_features: bool = False,
    ):
        """x (B, C, T) -> logits (B, n_outputs) [, list of encoder outputs (B, C, L_i, d)]."""
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
        features, aux = self.encoder(x, pos)
        self._aux_loss = self.aux_loss_weight * aux
        logits = self.final_layer(self.pooled_features(features), weights)
        return (logits, features) if return_features else logits
