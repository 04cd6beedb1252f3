"""The shared self-attention backbone. It knows tokens, never modalities."""

from attnlab.backbone.attention import SelfAttention
from attnlab.backbone.encoder import Encoder
from attnlab.backbone.local import local_attention
from attnlab.backbone.positions import POSITIONS, build_positions, sincos

__all__ = ["POSITIONS", "Encoder", "SelfAttention", "build_positions", "local_attention", "sincos"]
