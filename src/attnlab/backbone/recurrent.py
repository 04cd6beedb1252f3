"""Recurrent baselines (LSTM, GRU) with the backbone's contract: ``Tokens`` in, ``Encoded`` out.

Chosen with ``backbone=lstm`` or ``backbone=gru``; a front-end and a head built for the
self-attention encoder work unchanged, so convolution, recurrence and self-attention are
compared on the same data, heads and loop. Padded batches go through
``pack_padded_sequence``, so each sequence is read exactly as if it were alone.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from annotated_types import Ge, Interval
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.errors import ConfigError
from attnlab.types import Encoded, Tokens

RNNS: dict[str, type[nn.LSTM] | type[nn.GRU]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentEncoder(nn.Module):
    """A stack of ``depth`` LSTM or GRU layers, then a projection back to ``dim`` and a LayerNorm.

    The output at each token is the top layer's hidden state (both directions' states
    concatenated when bidirectional), projected to ``dim`` so heads sized by
    ``${backbone.dim}`` fit. With ``cls_token`` the sequence summary ``Encoded.cls`` is the
    top layer's final state, projected the same way: the last real token's state (and,
    bidirectional, the backward direction's state at the first token), which is how a
    recurrent classifier reads a sequence; ``head.pooling=auto`` then uses it.

    Args:
        dim: token width ``D`` in and out.
        kind: ``lstm`` or ``gru``.
        depth: recurrent layers (>= 1).
        hidden: hidden size of each direction.
        bidirectional: also read each sequence backwards.
        dropout: between recurrent layers and on the output.
        cls_token: return the final state as ``Encoded.cls``.
    """

    def __init__(
        self,
        dim: Annotated[int, Ge(1)],
        kind: Literal["lstm", "gru"] = "lstm",
        depth: Annotated[int, Ge(1)] = 1,
        hidden: Annotated[int, Ge(1)] = 128,
        bidirectional: bool = True,
        dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0,
        cls_token: bool = False,
    ) -> None:
        super().__init__()
        if kind not in RNNS:
            raise ConfigError(f"backbone.kind={kind!r} is unknown; choose one of {', '.join(RNNS)}")
        if depth < 1:
            raise ConfigError(
                f"backbone.depth={depth} leaves backbone={kind} without recurrent layers; set backbone.depth >= 1"
            )
        if hidden < 1:
            raise ConfigError(f"backbone.hidden={hidden} must be >= 1")
        self.dim = dim
        self.depth = depth
        self.kind = kind
        directions = 2 if bidirectional else 1
        self.rnn = RNNS[kind](
            dim,
            hidden,
            num_layers=depth,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if depth > 1 else 0.0,  # PyTorch drops between layers only
        )
        self.drop = nn.Dropout(dropout)
        width = directions * hidden
        self.proj = nn.Linear(width, dim) if width != dim else nn.Identity()
        self.norm = nn.LayerNorm(dim)
        self.use_cls = cls_token

    @property
    def has_cls(self) -> bool:
        return self.use_cls

    def forward(self, tokens: Tokens, return_attention: bool = False) -> Encoded:
        """Encode ``tokens``; ``return_attention`` is accepted for the contract and gives no maps.

        Returns:
            ``Encoded`` with ``x`` ``(B, T, D)`` (zeros before the norm at padding),
            ``cls`` ``(B, D)`` or None, and ``attention`` None.
        """
        x, pad_mask = tokens.x, tokens.pad_mask
        b, t, width = x.shape
        if width != self.dim:
            raise ConfigError(
                f"the front-end produced tokens of width {width} but backbone.dim={self.dim}; "
                "set the front-end's dim to ${backbone.dim}"
            )
        lengths = pad_mask.sum(dim=1)
        if not torch.equal(pad_mask, torch.arange(t, device=x.device)[None, :] < lengths[:, None]):
            raise ValueError(f"backbone={self.kind} needs padding at the end of each sequence (pad_mask a prefix)")
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, dirs * hidden)
        encoded = self.norm(self.proj(self.drop(out)))  # (B, T, D)
        cls = None
        if self.use_cls:
            final = state[0] if isinstance(state, tuple) else state  # (depth * dirs, B, hidden); LSTM: h_n
            final = final.view(self.depth, -1, b, final.shape[-1])[-1]  # (dirs, B, hidden): the top layer
            final = final.transpose(0, 1).reshape(b, -1)  # (B, dirs * hidden): forward, then backward
            cls = self.norm(self.proj(self.drop(final)))  # (B, D)
        return Encoded(x=encoded, pad_mask=pad_mask, cls=cls, attention=None)
