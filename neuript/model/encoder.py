"""The NeurIPT encoder: value embedding + positional encodings + merge/two-stage-attention blocks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import torch
from torch import nn

from .attention import SegmentMerge, SwiGLU, TwoStageAttentionLayer, merge_mask, sublayer_runner
from .embed import ElectrodeEncoding, ValueEmbedding, sincos_table
from .moe import MixtureOfExperts

__all__ = ["EncoderConfig", "EncoderBlock", "NeurIPTEncoder"]

Mode = Literal["paper", "official"]


@dataclass
class EncoderConfig:
    """Hyperparameters of :class:`NeurIPTEncoder` (paper size by default).

    Parameters
    ----------
    d_model : int
        Token dimension.
    n_heads : int
        Attention heads.
    d_ff : int
        Hidden width of the dense SwiGLU feed-forwards (blocks without experts).
    merge_factors : sequence of int
        Time-merge factor of each block; its length is the number of blocks.
    n_experts : sequence of int
        Routed experts per block (0 = dense SwiGLU); same length as ``merge_factors``.
    expert_hidden : int
        Hidden width of each routed expert.
    shared_hidden : int
        Hidden width of the shared expert.
    top_k : int or None
        Experts per token; default ``ceil(E / 2)`` per block.
    dropout : float
        Dropout on the residual branches and the feed-forward hidden layers (paper: 0.1).
    attn_dropout : float
        Dropout on the attention *weights*. The paper / reference code apply ``dropout`` (0.1) there too; the
        default here is 0 because attention-weight dropout rules out the fused (flash) attention kernel and
        materialises (N, heads, L, L) probabilities (≈10-25x slower attention on CPU at L = 256). Set
        ``attn_dropout=0.1`` to reproduce the reference training regime. Eval outputs do not depend on it.
    mode : {"paper", "official"}
        ``"paper"``: top-k softmax routing without token dropping; masked tokens are excluded as attention
        keys and zeroed before merging (no leakage). ``"official"``: reproduce the reference code (full-softmax
        routing with capacity dropping, masked queries attend only to themselves, temporal PE added in place).
    gate_noise : float
        Std of the gate-logit noise in training.
    importance_weight : float
        Weight of the MoE importance loss.
    position_encoding : {"grid", "continuous"}
        Electrode encoding variant (see :class:`~neuript.model.embed.ElectrodeEncoding`).
    grid_size : int
        Grid steps per axis of the electrode encoding.
    head_radius : float
        Coordinate half-range (metres) of the continuous electrode encoding.
    pe_temperature : float
        Frequency base of all sin/cos encodings.
    norm_eps : float
        LayerNorm epsilon.
    grad_checkpointing : bool
        Activation checkpointing: keep only the input of every merge, attention and feed-forward sub-layer and
        recompute the sub-layer in the backward pass (about 1/3 more compute for several times less activation
        memory).
    """

    d_model: int = 768
    n_heads: int = 8
    d_ff: int = 768
    merge_factors: Sequence[int] = (1, 4, 1, 2, 1, 2)
    n_experts: Sequence[int] = (0, 0, 2, 4, 4, 6)
    expert_hidden: int = 512
    shared_hidden: int = 768
    top_k: int | None = None
    dropout: float = 0.1
    attn_dropout: float = 0.0
    mode: Mode = "paper"
    gate_noise: float = 1e-3
    importance_weight: float = 0.008
    position_encoding: Literal["grid", "continuous"] = "grid"
    grid_size: int = 50
    head_radius: float = 0.1
    pe_temperature: float = 10000.0
    norm_eps: float = 1e-5
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.merge_factors = [int(m) for m in self.merge_factors]
        self.n_experts = [int(e) for e in self.n_experts]
        if len(self.merge_factors) != len(self.n_experts):
            raise ValueError(
                f"merge_factors ({len(self.merge_factors)}) and n_experts ({len(self.n_experts)}) "
                "must have one entry per block"
            )
        if any(m < 1 for m in self.merge_factors) or any(e < 0 for e in self.n_experts):
            raise ValueError("merge factors must be >= 1 and expert counts >= 0")
        if self.mode not in ("paper", "official"):
            raise ValueError(f"mode must be 'paper' or 'official', got {self.mode!r}")

    @property
    def n_blocks(self) -> int:
        return len(self.merge_factors)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def fields(cls) -> set[str]:
        return set(cls.__dataclass_fields__)


def _make_ffn(cfg: EncoderConfig, n_experts: int) -> nn.Module:
    if n_experts == 0:
        return SwiGLU(d_model=cfg.d_model, d_hidden=cfg.d_ff, dropout=cfg.dropout)
    return MixtureOfExperts(
        d_model=cfg.d_model,
        n_experts=n_experts,
        expert_hidden=cfg.expert_hidden,
        shared_hidden=cfg.shared_hidden,
        top_k=cfg.top_k,
        routing=cfg.mode,
        gate_noise=cfg.gate_noise,
        importance_weight=cfg.importance_weight,
        dropout=cfg.dropout,
    )


class EncoderBlock(nn.Module):
    """Optional segment merge followed by one two-stage attention layer.

    Parameters
    ----------
    cfg : EncoderConfig
        Encoder hyperparameters.
    index : int
        Block index (selects the merge factor and expert count).
    """

    def __init__(self, *, cfg: EncoderConfig, index: int) -> None:
        super().__init__()
        factor = cfg.merge_factors[index]
        self.merge_factor = factor
        self.merge = SegmentMerge(d_model=cfg.d_model, factor=factor, norm_eps=cfg.norm_eps) if factor > 1 else None
        self.tsa = TwoStageAttentionLayer(
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            ffn1=_make_ffn(cfg, cfg.n_experts[index]),
            ffn2=_make_ffn(cfg, cfg.n_experts[index]),
            dropout=cfg.dropout,
            norm_eps=cfg.norm_eps,
            attn_dropout=cfg.attn_dropout,
            mask_rule=cfg.mode,
            grad_checkpointing=cfg.grad_checkpointing,
        )
        self.mode = cfg.mode
        self.grad_checkpointing = cfg.grad_checkpointing

    def forward(
        self,
        x: torch.Tensor,
        *,
        temporal_pe: torch.Tensor | None = None,
        spatial_pe: torch.Tensor | None = None,
        prev_mask: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, L, d) -> (B, C, L / merge factor, d) and the block's summed MoE auxiliary loss (or None).

        With ``grad_checkpointing`` (set at construction or by ``set_grad_checkpointing``) the merge and each
        attention / feed-forward sub-layer are recomputed in the backward pass (see
        :class:`~neuript.model.attention.TwoStageAttentionLayer`)."""
        if self.merge is not None:
            if prev_mask is not None and self.mode == "paper":
                x = x.masked_fill(prev_mask[..., None], 0.0)  # masked parts contribute nothing
            x = sublayer_runner(self)(self.merge, x)
        if temporal_pe is not None:
            x = x + temporal_pe[: x.shape[2]].to(x.dtype)
        return self.tsa(x, spatial_pe=spatial_pe, mask=mask)


class NeurIPTEncoder(nn.Module):
    """NeurIPT encoder (spec §2-3).

    Input (B, C, T) signals and (C, 3) electrode positions; output the list of ``n_blocks + 1`` token maps
    (B, C, L_i, d): the embedding (with temporal encoding) and the output of every block.

    Parameters
    ----------
    cfg : EncoderConfig or None
        Hyperparameters; keyword overrides are applied on top (``NeurIPTEncoder(d_model=64, ...)``).
    """

    def __init__(self, cfg: EncoderConfig | None = None, **overrides) -> None:
        super().__init__()
        if cfg is None:
            cfg = EncoderConfig(**overrides)
        elif overrides:
            cfg = EncoderConfig(**{**cfg.to_dict(), **overrides})
        self.cfg = cfg
        self.value_embedding = ValueEmbedding(d_model=cfg.d_model)
        self.electrode_encoding = ElectrodeEncoding(
            d_model=cfg.d_model,
            mode=cfg.position_encoding,
            grid_size=cfg.grid_size,
            head_radius=cfg.head_radius,
            temperature=cfg.pe_temperature,
        )
        self.blocks = nn.ModuleList(EncoderBlock(cfg=cfg, index=i) for i in range(cfg.n_blocks))

    @property
    def n_blocks(self) -> int:
        return self.cfg.n_blocks

    @property
    def grad_checkpointing(self) -> bool:
        return self.cfg.grad_checkpointing

    @grad_checkpointing.setter
    def grad_checkpointing(self, value: bool) -> None:
        self.set_grad_checkpointing(value)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Switch activation checkpointing of every sub-layer on or off (timm's method name); recorded in
        :attr:`cfg` so a saved model keeps the setting."""
        self.cfg.grad_checkpointing = bool(enable)
        for block in self.blocks:
            block.grad_checkpointing = block.tsa.grad_checkpointing = bool(enable)

    def temporal_encoding(self, length: int, device=None) -> torch.Tensor:
        """(length, d) sin/cos encoding of the time index."""
        return sincos_table(length, self.cfg.d_model, temperature=self.cfg.pe_temperature, device=device)

    def scale_lengths(self, n_times: int) -> list[int]:
        """Token length of every block's output for an input of ``n_times`` samples."""
        lengths, length = [], n_times
        for m in self.cfg.merge_factors:
            length = -(-length // m)
            lengths.append(length)
        return lengths

    def scale_masks(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """Per-block masks (B, C, L_i) from a sample-level mask (B, C, T): a merged token is masked when all
        of its parts are (last parts repeated when the length is not divisible, as for the tokens)."""
        masks, m = [], mask
        for factor in self.cfg.merge_factors:
            m = merge_mask(m, factor)
            masks.append(m)
        return masks

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Value embedding (B, C, T) -> (B, C, T, d) without positional encoding."""
        if x.ndim != 3:
            raise ValueError(f"expected input of shape (batch, channels, time), got {tuple(x.shape)}")
        return self.value_embedding(x)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        *,
        masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
        electrode_pe: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encode.

        Parameters
        ----------
        x : Tensor
            (B, C, T) signals (ignored when ``tokens`` is given, except for its shape).
        positions : Tensor
            (C, 3) electrode positions.
        masks : Tensor or list of Tensor, optional
            Boolean (True = masked). Either a sample mask (B, C, T), from which per-block masks are derived
            (:meth:`scale_masks`), or one mask per block (B, C, L_i).
        tokens : Tensor, optional
            Pre-computed embedding (B, C, T, d) (e.g. with mask tokens substituted), replacing
            ``value_embedding(x)``.
        electrode_pe : Tensor, optional
            Pre-computed ``electrode_encoding(positions)`` (C, d) for a fixed montage: an exported graph keeps
            it as a constant instead of tracing the position checks and grid quantisation.

        Returns
        -------
        outputs : list of Tensor
            ``n_blocks + 1`` tensors (B, C, L_i, d): the embedding, then every block's output.
        aux_loss : Tensor
            Sum of the MoE auxiliary losses (0 if there are none).
        """
        cfg = self.cfg
        h = self.embed(x) if tokens is None else tokens
        b, c, t, _ = h.shape
        if positions.shape[0] != c:
            raise ValueError(f"got {positions.shape[0]} electrode positions for {c} input channels")
        block_masks: list[torch.Tensor] | None = None
        sample_mask = None
        if masks is not None:
            if isinstance(masks, torch.Tensor):
                sample_mask = masks
                block_masks = self.scale_masks(masks)
            else:
                block_masks = list(masks)
                sample_mask = block_masks[0] if cfg.merge_factors[0] == 1 else None
            if len(block_masks) != cfg.n_blocks:
                raise ValueError(f"expected {cfg.n_blocks} block masks, got {len(block_masks)}")
        pe_t = self.temporal_encoding(t, device=h.device)
        if electrode_pe is None:
            pe_s = self.electrode_encoding(positions.to(h.device))
        else:
            pe_s = electrode_pe.to(h.device)
        # Temporal PE: paper mode adds it to the embedding; official mode adds it at the start of block 1
        # after its (optional) merge — in place, so the embedding output carries it when block 1 does not merge.
        first_pe = None
        if cfg.mode == "paper" or cfg.merge_factors[0] == 1:
            h = h + pe_t.to(h.dtype)
        else:
            first_pe = pe_t
        outputs = [h]
        aux_total = h.new_zeros((), dtype=torch.float32)
        prev_mask = sample_mask
        for i, block in enumerate(self.blocks):
            kwargs = dict(
                temporal_pe=first_pe if i == 0 else None,
                spatial_pe=pe_s if i == 0 else None,
                prev_mask=prev_mask,
                mask=None if block_masks is None else block_masks[i],
            )
            h, aux = block(h, **kwargs)
            if aux is not None:
                aux_total = aux_total + aux
            outputs.append(h)
            prev_mask = None if block_masks is None else block_masks[i]
        return outputs, aux_total
