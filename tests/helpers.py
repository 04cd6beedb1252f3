"""Test-only modules, importable from configs as ``helpers.<name>``."""

from __future__ import annotations

import torch

from attnlab.types import Batch, Tokens
from attnlab_vision import PatchEmbed


class PoisonedPatchEmbed(PatchEmbed):
    """A patch embedding whose tokens turn NaN after ``poison_after`` training batches."""

    def __init__(self, *args, poison_after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.poison_after = poison_after
        self.calls = 0

    def forward(self, batch: Batch) -> Tokens:
        tokens = super().forward(batch)
        if self.training:
            self.calls += 1
            if self.calls > self.poison_after:
                tokens.x = tokens.x * torch.nan
        return tokens
