"""Token embeddings: ids become the backbone's tokens, one per id."""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge
from torch import nn

from attnlab.errors import ConfigError
from attnlab.types import Batch, Tokens


class TokenEmbedding(nn.Module):
    """A learned vector per vocabulary entry; padding is masked out, never attended to.

    A batch is ``inputs`` ``(B, T)`` token ids and ``lengths`` ``(B,)``. Positions are the
    backbone's business (``backbone.positions``), so with ``backbone.depth=0`` the tokens
    are a bag of embeddings.

    Args:
        vocab_size: rows of the table (from the data: the tokenizer's vocabulary).
        dim: token width (``backbone.dim``).
        pad_id: the padding id (from the data); its row stays zero and gets no gradient.
    """

    def __init__(
        self, vocab_size: Annotated[int, Ge(1)], dim: Annotated[int, Ge(1)], pad_id: Annotated[int, Ge(0)] = 0
    ) -> None:
        super().__init__()
        if not 0 <= pad_id < vocab_size:
            raise ConfigError(f"frontend.pad_id={pad_id} must be a vocabulary id below vocab_size={vocab_size}")
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)

    def forward(self, batch: Batch) -> Tokens:
        ids, lengths = batch["inputs"], batch["lengths"]
        x = self.embed(ids)  # (B, T, D)
        pad_mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]  # (B, T)
        return Tokens(x=x, pad_mask=pad_mask)
