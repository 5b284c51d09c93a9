"""Pretraining: AAMP / random maskers, the reconstruction decoder and :class:`NeurIPTPretrain`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import MultiHeadAttention, SwiGLU, TwoStageAttentionLayer, sublayer_runner
from .dropout import Dropout
from .encoder import EncoderConfig, NeurIPTEncoder
from .io import load_model, locate_artifact, save_artifact
from .masking import AAMPMasker, RandomMasker, bert_replacement, make_masker
from .montage import as_positions, resolve_positions

__all__ = ["DecoderLayer", "NeurIPTDecoder", "NeurIPTPretrain", "AAMPMasker", "RandomMasker", "bert_replacement"]

#: windows per recomputed segment of the checkpointed decoder (:class:`NeurIPTDecoder`): the backward pass holds
#: the activations of all decoder layers for this many windows at a time
DECODER_CHECKPOINT_WINDOWS = 2


class DecoderLayer(nn.Module):
    """One decoder layer (reference layout): two-stage self-attention (dense SwiGLU); ``q = LN_q(x)``;
    cross-attention per channel over time from ``q`` to ``LN_kv(memory)``; ``x = LN_2(q + cross)``;
    ``x = x + MLP(x)``; prediction ``Linear(d -> 1)(x)``; ``x`` is the next layer's query.

    Parameters
    ----------
    d_model, n_heads, d_ff : int
        Dimensions (as the encoder).
    dropout : float
        Dropout (residual branches, feed-forward hidden).
    norm_eps : float
        LayerNorm epsilon.
    attn_dropout : float or None
        Attention-weight dropout (None: ``dropout``).
    grad_checkpointing : bool
        Recompute each sub-layer (four of the two-stage attention, cross-attention, MLP) in the backward pass.
    """

    def __init__(
        self, *, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_eps: float = 1e-5,
        attn_dropout: float | None = None, grad_checkpointing: bool = False,
    ):
        super().__init__()
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.grad_checkpointing = bool(grad_checkpointing)
        self.tsa = TwoStageAttentionLayer(
            d_model=d_model,
            n_heads=n_heads,
            ffn1=SwiGLU(d_model=d_model, d_hidden=d_ff, dropout=dropout),
            ffn2=SwiGLU(d_model=d_model, d_hidden=d_ff, dropout=dropout),
            dropout=dropout,
            norm_eps=norm_eps,
            attn_dropout=attn_dropout,
            grad_checkpointing=grad_checkpointing,
        )
        self.cross_attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=attn_dropout)
        self.norm_q = nn.LayerNorm(d_model, eps=norm_eps)
        self.norm_kv = nn.LayerNorm(d_model, eps=norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=norm_eps)
        self.mlp = SwiGLU(d_model=d_model, d_hidden=d_ff, dropout=dropout)
        self.pred = nn.Linear(d_model, 1)
        self.drop = Dropout(dropout)

    def _cross(self, x: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        x = self.norm_q(x)
        return self.norm2(x + self.drop(self.cross_attn(x, self.norm_kv(mem))))

    def _mlp(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.drop(self.mlp(x))
        return x, self.pred(x).squeeze(-1)

    def forward(self, q: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q (B, C, T, d), memory (B, C, L, d) -> (new q (B, C, T, d), prediction (B, C, T))."""
        b = q.shape[0]
        q, _ = self.tsa(q)
        x = rearrange(q, "b c t d -> (b c) t d")
        mem = rearrange(memory, "b c l d -> (b c) l d")
        run = sublayer_runner(self)
        x = run(self._cross, x, mem)
        x, pred = run(self._mlp, x)
        return rearrange(x, "(b c) t d -> b c t d", b=b), rearrange(pred, "(b c) t -> b c t", b=b)


class NeurIPTDecoder(nn.Module):
    """Stack of :class:`DecoderLayer`, one per encoder output; the per-layer predictions are summed.

    Parameters
    ----------
    n_layers : int
        Number of layers (= number of encoder outputs, blocks + 1).
    d_model, n_heads, d_ff : int
        Dimensions.
    dropout, norm_eps : float
        Dropout and LayerNorm epsilon.
    attn_dropout : float or None
        Attention-weight dropout (None: ``dropout``).
    grad_checkpointing : bool
        Recompute the decoder in the backward pass, ``checkpoint_windows`` windows at a time: only the query
        and the memories (which the encoder keeps anyway) are saved. Inside a chunk's recomputation each layer is
        checkpointed again, so the backward pass holds the layer inputs of one chunk and the activations of one
        layer of it (a third decoder forward; tiny pretraining at 64 x 256 keeps 43 MiB per window instead of
        ~1 GiB without checkpointing). Every decoder layer runs at full resolution (C x T tokens), so
        per-sub-layer checkpointing (what the encoder uses) still kept six full-resolution tensors per layer —
        most of the memory of a large pretraining batch; chunking over windows is exact because the decoder
        treats every window independently (no MoE, no batch statistics).
    checkpoint_windows : int
        Windows per recomputed chunk (see ``grad_checkpointing``).
    """

    def __init__(
        self, *, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_eps: float = 1e-5,
        attn_dropout: float | None = None, grad_checkpointing: bool = False,
        checkpoint_windows: int = DECODER_CHECKPOINT_WINDOWS,
    ):
        super().__init__()
        self.grad_checkpointing = bool(grad_checkpointing)
        self.checkpoint_windows = int(checkpoint_windows)
        # the layers' own sub-layer checkpointing stays off: the decoder checkpoints whole chunks instead
        self.layers = nn.ModuleList(
            DecoderLayer(
                d_model=d_model, n_heads=n_heads, d_ff=d_ff, dropout=dropout, norm_eps=norm_eps,
                attn_dropout=attn_dropout,
            )
            for _ in range(n_layers)
        )

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = bool(enable)

    def _decode(self, query: torch.Tensor, *memories: torch.Tensor) -> torch.Tensor:
        total = None
        # inside a recomputed chunk, each layer is checkpointed again (nested): the backward pass then holds
        # one layer's activations of one chunk, not all layers'
        nested = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for layer, mem in zip(self.layers, memories):
            if nested:
                query, pred = checkpoint(layer, query, mem, use_reentrant=False)
            else:
                query, pred = layer(query, mem)
            total = pred if total is None else total + pred
        return total

    def forward(self, query: torch.Tensor, memories: Sequence[torch.Tensor]) -> torch.Tensor:
        """query (B, C, T, d) and one memory per encoder output -> summed prediction (B, C, T)."""
        if len(memories) != len(self.layers):
            raise ValueError(f"decoder has {len(self.layers)} layers but got {len(memories)} encoder outputs")
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            n = max(self.checkpoint_windows, 1)
            chunks = zip(query.split(n), *(m.split(n) for m in memories))
            return torch.cat([checkpoint(self._decode, *chunk, use_reentrant=False) for chunk in chunks])
        return self._decode(query, *memories)


class NeurIPTPretrain(nn.Module):
    """Encoder + reconstruction decoder for amplitude-aware masked pretraining (spec §4).

    Parameters
    ----------
    n_chans, n_times, sfreq, chs_info, ch_names, positions
        Default channel description (as :class:`~neuript.model.classifier.NeurIPT`); ``positions`` can also be
        given per call.
    masker : {"aamp", "random"} or callable
        Default masker used when ``forward`` gets no mask.
    mask_ratios : sequence of float
        Ratios the default masker draws from.
    token_prob, random_prob : float
        BERT rule for the masked input tokens (mask token / random embedding / unchanged).
    loss_p : int
        Reconstruction loss exponent (1 = L1, 2 = MSE) on masked points.
    **encoder_kwargs
        :class:`~neuript.model.encoder.EncoderConfig` fields.

    ``forward(x, positions=None, mask=None)``: ``mask`` is None (default masker), a masker callable, a bool
    tensor (B, C, T) (coarser masks derived: merged token masked when all its parts are), or a list: the
    reference's per-block masks ``mask_info_0..`` (block 1 must not merge) or ``[sample mask] + per-block masks``.
    Returns ``dict(pred (B, C, T), recon_loss, aux_loss, mask (B, C, T))`` where ``aux_loss`` is the
    *unweighted* sum of the MoE auxiliary losses, as :attr:`NeurIPT.aux_loss <neuript.model.NeurIPT.aux_loss>`:
    the training loop owns its weight (``--aux-weight``, reference 0.8).

    Attention / masking rules: see ``docs/model.md``.
    """

    def __init__(
        self,
        *,
        n_chans: int | None = None,
        n_times: int | None = None,
        sfreq: float | None = None,
        chs_info: Sequence[dict] | None = None,
        ch_names: Sequence[str] | None = None,
        positions: Any = None,
        masker: str | Callable = "aamp",
        mask_ratios: Sequence[float] = (0.2, 0.35, 0.5),
        token_prob: float = 0.8,
        random_prob: float = 0.1,
        loss_p: int = 1,
        **encoder_kwargs,
    ) -> None:
        super().__init__()
        unknown = set(encoder_kwargs) - EncoderConfig.fields()
        if unknown:
            raise TypeError(f"unknown NeurIPTPretrain arguments: {sorted(unknown)}")
        pos, names = resolve_positions(n_chans=n_chans, chs_info=chs_info, ch_names=ch_names, positions=positions)
        self.encoder = NeurIPTEncoder(EncoderConfig(**encoder_kwargs))
        cfg = self.encoder.cfg
        self.decoder = NeurIPTDecoder(
            n_layers=cfg.n_blocks + 1, d_model=cfg.d_model, n_heads=cfg.n_heads, d_ff=cfg.d_ff,
            dropout=cfg.dropout, norm_eps=cfg.norm_eps, attn_dropout=cfg.attn_dropout,
            grad_checkpointing=cfg.grad_checkpointing,
        )
        self.mask_token = nn.Parameter(torch.zeros(cfg.d_model))
        nn.init.normal_(self.mask_token, std=0.02)
        self.n_chans = n_chans if n_chans is not None else (pos.shape[0] if pos is not None else None)
        self.n_times, self.sfreq, self.ch_names = n_times, sfreq, names
        self.masker_name = masker if isinstance(masker, str) else None
        self.mask_ratios = tuple(mask_ratios)
        if isinstance(masker, str):
            if masker not in ("aamp", "random"):
                raise ValueError(f"masker must be 'aamp', 'random' or a callable, got {masker!r}")
            masker = make_masker(masker, ratios=mask_ratios)
        self.masker = masker
        self.token_prob, self.random_prob, self.loss_p = token_prob, random_prob, loss_p
        self.register_buffer("positions", pos if pos is not None else torch.empty(0, 3), persistent=False)
        self.metadata: dict[str, Any] = {"kind": "pretrain"}

    @property
    def input_window_seconds(self) -> float | None:
        return self.n_times / self.sfreq if self.n_times and self.sfreq else None

    # ------------------------------------------------------------------ config / io
    @property
    def config(self) -> dict:
        return dict(
            model_type="NeurIPTPretrain",
            n_chans=self.n_chans, n_times=self.n_times, sfreq=self.sfreq, ch_names=self.ch_names,
            positions=self.positions.tolist() if self.positions.numel() else None,
            masker=self.masker_name or "aamp", mask_ratios=list(self.mask_ratios),
            token_prob=self.token_prob, random_prob=self.random_prob, loss_p=self.loss_p,
            **self.encoder.cfg.to_dict(),
        )

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute encoder and decoder sub-layers in the backward pass."""
        self.encoder.set_grad_checkpointing(enable)
        self.decoder.set_grad_checkpointing(enable)

    def save_pretrained(self, directory: str | os.PathLike, **metadata) -> Path:
        """Write the model artifact (see :mod:`neuript.model.io`); ``metadata`` updates :attr:`metadata`."""
        self.metadata.update(metadata)
        return save_artifact(self, directory)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, local_files_only: bool = False,
                        **overrides) -> "NeurIPTPretrain":
        """Load an artifact directory, a pretraining run directory (its ``model/``) or a hub repository id."""
        directory = locate_artifact(path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        return load_model(cls, directory, **overrides)

    # ------------------------------------------------------------------ forward
    def decoder_query(self, n_chans: int, n_times: int, positions: torch.Tensor) -> torch.Tensor:
        """Decoder query on the full grid: temporal PE (T, d) + electrode PE (C, d) -> (C, T, d)."""
        pe_t = self.encoder.temporal_encoding(n_times, device=positions.device)
        pe_s = self.encoder.electrode_encoding(positions)
        return pe_s[:, None, :] + pe_t[None, :, :]

    def _positions(self, x: torch.Tensor, positions: Any) -> torch.Tensor:
        if positions is not None:
            pos = as_positions(positions).to(x.device)
        elif self.positions.numel():
            pos = self.positions
        else:
            raise ValueError("no electrode positions: pass positions or build the model with a channel description")
        if pos.shape[0] != x.shape[1]:
            raise ValueError(f"input has {x.shape[1]} channels but {pos.shape[0]} positions")
        return pos

    def forward(self, x: torch.Tensor, positions: Any = None, mask: Any = None) -> dict[str, torch.Tensor]:
        pos = self._positions(x, positions)
        enc = self.encoder
        if mask is None:
            mask = self.masker(x)
        elif callable(mask) and not isinstance(mask, torch.Tensor):
            mask = mask(x)
        if isinstance(mask, torch.Tensor):
            sample_mask = mask.bool()
            block_masks = enc.scale_masks(sample_mask)
        else:
            given = [m.bool() for m in mask]
            n_blocks = enc.cfg.n_blocks
            if len(given) == n_blocks + 1:  # sample mask first, then one per block
                sample_mask, block_masks = given[0], given[1:]
            elif len(given) == n_blocks and given[0].shape[-1] == x.shape[-1]:  # reference layout (mask_info_0..)
                sample_mask, block_masks = given[0], given
            else:
                raise ValueError(
                    f"mask list must hold {n_blocks} per-block masks (block 1 unmerged) or the sample mask "
                    f"followed by {n_blocks} per-block masks; got {len(given)}"
                )
        if sample_mask.shape != x.shape:
            raise ValueError(f"mask shape {tuple(sample_mask.shape)} does not match input {tuple(x.shape)}")

        tokens = enc.embed(x)
        if enc.cfg.mode == "paper" and self.training:
            use_token, use_random = bert_replacement(sample_mask, token_prob=self.token_prob, random_prob=self.random_prob)
            perm = torch.randint(x.shape[-1], x.shape, device=x.device)
            random_tokens = enc.embed(torch.gather(x, -1, perm))  # embeddings of values drawn from the same channel
            tokens = torch.where(use_random[..., None], random_tokens, tokens)
            tokens = torch.where(use_token[..., None], self.mask_token.to(tokens.dtype), tokens)
        outputs, aux = enc(x, pos, masks=block_masks, tokens=tokens)
        out_masks = [sample_mask] + list(block_masks)
        memories = [
            torch.where(m[..., None], self.mask_token.to(o.dtype), o) for o, m in zip(outputs, out_masks)
        ]
        query = self.decoder_query(x.shape[1], x.shape[2], pos).to(outputs[0].dtype)
        query = query.unsqueeze(0).expand(x.shape[0], -1, -1, -1)
        pred = self.decoder(query, memories)
        err = (pred.float() - x.float()).abs().pow(self.loss_p)
        n = sample_mask.sum().clamp(min=1)
        recon = (err * sample_mask).sum() / n
        return dict(pred=pred, recon_loss=recon, aux_loss=aux, mask=sample_mask)
