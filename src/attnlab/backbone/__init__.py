"""The shared backbone. It knows tokens, never modalities.

Two kinds fill the backbone slot (config group ``backbone``): the self-attention
:class:`Encoder` and the recurrent baselines :class:`RecurrentEncoder`. Both meet the
rest of attnlab through :class:`Backbone`.
"""

from typing import Protocol

from attnlab.backbone.attention import NORMALIZE, SCORES, SelfAttention
from attnlab.backbone.encoder import Encoder
from attnlab.backbone.local import local_attention
from attnlab.backbone.positions import POSITIONS, Rotary, build_positions, sincos
from attnlab.backbone.recurrent import RecurrentEncoder
from attnlab.types import Encoded, Tokens


class Backbone(Protocol):
    """What the module, the heads and the plugins use of a backbone.

    Attributes:
        dim: token width in and out.
        depth: number of layers (0: the front-end alone, for :class:`Encoder`).
    """

    dim: int
    depth: int

    @property
    def has_cls(self) -> bool:
        """Whether ``Encoded.cls`` is filled (a CLS token, or a recurrent final state)."""
        ...

    def __call__(self, tokens: Tokens, return_attention: bool = False) -> Encoded: ...


__all__ = [
    "NORMALIZE",
    "POSITIONS",
    "SCORES",
    "Backbone",
    "Encoder",
    "RecurrentEncoder",
    "Rotary",
    "SelfAttention",
    "build_positions",
    "local_attention",
    "sincos",
]
