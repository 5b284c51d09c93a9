"""NeurIPT model layer: pure PyTorch, takes tensors (signals, positions, masks)."""

from .attention import MultiHeadAttention, SegmentMerge, SwiGLU, TwoStageAttentionLayer
from .classifier import NeurIPT
from .embed import ElectrodeEncoding, ValueEmbedding, quantise_positions
from .encoder import EncoderConfig, NeurIPTEncoder
from .heads import IILPHead
from .io import CheckpointMismatchError
from .moe import MixtureOfExperts
from .masking import AAMPMasker, RandomMasker, make_masker
from .pretrain import NeurIPTPretrain
from .presets import PRESETS, neuript_base, neuript_small, neuript_tiny, preset_config

__all__ = [
    "NeurIPT",
    "NeurIPTPretrain",
    "AAMPMasker",
    "RandomMasker",
    "make_masker",
    "preset_config",
    "PRESETS",
    "neuript_tiny",
    "neuript_small",
    "neuript_base",
    "NeurIPTEncoder",
    "EncoderConfig",
    "IILPHead",
    "MixtureOfExperts",
    "MultiHeadAttention",
    "SegmentMerge",
    "SwiGLU",
    "TwoStageAttentionLayer",
    "ElectrodeEncoding",
    "ValueEmbedding",
    "quantise_positions",
    "CheckpointMismatchError",
]
