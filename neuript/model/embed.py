"""Token embeddings: value embedding, sinusoidal temporal encoding and 3D electrode encoding.

Everything here is computed from the input (its length, its electrode positions); nothing depends on a
fixed sampling rate, channel count or channel order.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

__all__ = [
    "ValueEmbedding",
    "sincos_table",
    "sincos_encode",
    "axis_dims",
    "quantise_positions",
    "ElectrodeEncoding",
]


class ValueEmbedding(nn.Module):
    """Embed every scalar sample as one token: ``Linear(1, d_model)``.

    Parameters
    ----------
    d_model : int
        Token dimension.

    Shapes: (B, C, T) -> (B, C, T, d_model).
    """

    def __init__(self, *, d_model: int) -> None:
        super().__init__()
        self.linear = nn.Linear(1, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.unsqueeze(-1))


def sincos_encode(pos: torch.Tensor, dim: int, *, temperature: float = 10000.0) -> torch.Tensor:
    """Vaswani sin/cos encoding of (possibly fractional) positions.

    ``out[..., 2i] = sin(pos * w_i)``, ``out[..., 2i+1] = cos(pos * w_i)``, ``w_i = temperature^(-2i/dim)``.
    Odd ``dim`` is supported (the last cosine column is dropped).

    Parameters
    ----------
    pos : Tensor
        Positions of any shape ``S``.
    dim : int
        Encoding width.
    temperature : float
        Frequency base.

    Returns
    -------
    Tensor of shape ``S + (dim,)`` in float32 (cast by the caller).
    """
    pos = pos.float()
    half = (dim + 1) // 2
    freqs = torch.exp(
        torch.arange(0, 2 * half, 2, device=pos.device, dtype=torch.float32) * (-math.log(temperature) / dim)
    )
    ang = pos.unsqueeze(-1) * freqs
    out = torch.stack((ang.sin(), ang.cos()), dim=-1).flatten(-2)
    return out[..., :dim]


def sincos_table(length: int, dim: int, *, temperature: float = 10000.0, device=None) -> torch.Tensor:
    """Table of :func:`sincos_encode` for positions ``0 .. length-1``: (length, dim) float32."""
    return sincos_encode(torch.arange(length, device=device, dtype=torch.float32), dim, temperature=temperature)


def axis_dims(d_model: int) -> tuple[int, int, int]:
    """Split ``d_model`` over the x, y, z axes as the reference code does.

    ``dx = dy = d//3`` if ``d//3`` is even else ``d//3 - 1``; ``dz = d - dx - dy``.
    """
    third = d_model // 3
    dxy = third if third % 2 == 0 else third - 1
    return dxy, dxy, d_model - 2 * dxy


def quantise_positions(positions: torch.Tensor, grid_size: int = 50) -> torch.Tensor:
    """Quantise electrode positions to the reference code's integer grid.

    Subtract the per-axis minimum over the given channels, scale all axes by one factor
    ``(grid_size - 1) / max`` and round (half to even, like numpy) to integers ``0 .. grid_size-1``.
    The result depends on which channels are present (the grid is per montage).

    Parameters
    ----------
    positions : Tensor
        (C, 3) positions in any unit.
    grid_size : int
        Number of grid steps per axis.

    Returns
    -------
    LongTensor (C, 3).
    """
    p = positions.double()
    p = p - p.min(dim=0).values
    top = p.max()
    if top > 0:
        p = p * ((grid_size - 1) / top)
    return torch.round(p).long()


class ElectrodeEncoding(nn.Module):
    """3D electrode position encoding (no learnable weights).

    The model dimension is split over x, y, z (:func:`axis_dims`); each axis coordinate is encoded with
    sin/cos and the three parts are concatenated.

    Parameters
    ----------
    d_model : int
        Encoding width.
    mode : {"grid", "continuous"}
        ``"grid"`` (paper / reference): positions are quantised to a ``grid_size``-step integer grid spanning
        the channels present (:func:`quantise_positions`), so the encoding of one electrode depends on the
        montage. ``"continuous"``: each coordinate (metres, MNE head frame) is mapped with a fixed affine map
        ``(p + head_radius) / (2 * head_radius) * (grid_size - 1)`` and encoded at that fractional position;
        an electrode's encoding does not depend on which other channels are present.
    grid_size : int
        Steps per axis (reference: 50).
    head_radius : float
        Half-width of the coordinate range mapped onto the grid in ``"continuous"`` mode (metres).
    temperature : float
        Frequency base of the sin/cos encoding.
    """

    def __init__(
        self,
        *,
        d_model: int,
        mode: Literal["grid", "continuous"] = "grid",
        grid_size: int = 50,
        head_radius: float = 0.1,
        temperature: float = 10000.0,
    ) -> None:
        super().__init__()
        if mode not in ("grid", "continuous"):
            raise ValueError(f"position encoding mode must be 'grid' or 'continuous', got {mode!r}")
        self.d_model = d_model
        self.mode = mode
        self.grid_size = grid_size
        self.head_radius = head_radius
        self.temperature = temperature

    def coordinates(self, positions: torch.Tensor) -> torch.Tensor:
        """Grid coordinates (C, 3) — integer-valued in grid mode, fractional in continuous mode."""
        if positions.ndim != 2 or positions.shape[-1] != 3:
            raise ValueError(f"positions must have shape (channels, 3), got {tuple(positions.shape)}")
        if not torch.isfinite(positions).all():
            raise ValueError("positions contain non-finite values")
        if self.mode == "grid":
            return quantise_positions(positions, self.grid_size).float()
        scale = (self.grid_size - 1) / (2.0 * self.head_radius)
        return (positions.float() + self.head_radius) * scale

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """(C, 3) positions -> (C, d_model) float32 encoding."""
        coords = self.coordinates(positions)
        parts = [
            sincos_encode(coords[:, i], dim, temperature=self.temperature)
            for i, dim in enumerate(axis_dims(self.d_model))
        ]
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, mode={self.mode!r}, grid_size={self.grid_size}"
