"""How attention maps show text: tokens named on the axes, relevance per token.

:class:`TokenNames` is the text plugin's :class:`attnlab.explain.AttentionView`
(``callbacks.attention_maps.view`` in ``modality/text.yaml``). The embedding makes one
token per id, so the names of a sequence's tokens are its ids decoded one by one with the
run's tokenizer, which the datamodule saved in the run folder when it was set up.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from attnlab.explain import ExampleAttention
from attnlab.types import Batch
from attnlab_text.data import TOKENIZER_DIR
from attnlab_text.tokenizer import SETTINGS_FILE, SPECIALS, ByteTokenizer, TextTokenizer

log = logging.getLogger(__name__)

MAX_NAME = 12
"""Characters of a token's name shown on an axis."""


def token_name(tokenizer: TextTokenizer, token_id: int) -> str:
    """A readable name of one id: the special's name, its text, or ``#id`` when it has none."""
    if token_id < len(SPECIALS):
        return SPECIALS[token_id]
    text = tokenizer.decode([token_id]).strip()
    if not text or not text.isprintable() or "\ufffd" in text:  # e.g. one byte of a multi-byte character
        return f"#{token_id}"
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


class TokenNames:
    """Names tokens after the run's tokenizer and draws each token's relevance.

    Args:
        tokenizer: a tokenizer of the run's kind and settings (``data.source.tokenizer``); None
            means bytes, as in the datamodule.
        save_dir: the run folder the datamodule saved the trained tokenizer into
            (``data.save_dir``); needed unless the tokenizer needs no training.
    """

    def __init__(self, tokenizer: TextTokenizer | None = None, save_dir: str | None = None) -> None:
        self.tokenizer: TextTokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        self.folder = Path(save_dir).expanduser() / TOKENIZER_DIR if save_dir is not None else None
        self.ready: bool | None = None  # None: not looked for yet

    def _ready(self) -> bool:
        """Loads the saved tokenizer once; False (with a warning) when there is none."""
        if self.ready is None:
            saved = self.folder is not None and (self.folder / SETTINGS_FILE).is_file()
            if saved:
                assert self.folder is not None
                self.tokenizer.load(self.folder)
            elif self.tokenizer.needs_fit:
                log.warning("attention maps: no saved tokenizer in %s; tokens are numbered, not named", self.folder)
            self.ready = saved or not self.tokenizer.needs_fit
        return self.ready

    def labels(self, batch: Batch, index: int) -> list[str] | None:
        if not self._ready():
            return None
        ids = batch["inputs"][index, : int(batch["lengths"][index])].tolist()
        return [token_name(self.tokenizer, i) for i in ids]

    def overlay(self, batch: Batch, index: int, attention: ExampleAttention) -> Figure:
        """Each token's share of the prediction (rollout relevance), tokens named on the axis."""
        names = self.labels(batch, index)
        relevance = attention.relevance.numpy()
        tokens = len(relevance)
        fig = Figure(figsize=(min(max(6.0, 0.16 * tokens + 2.0), 24.0), 3.6), layout="constrained")
        ax = fig.add_subplot()
        ax.bar(np.arange(tokens), relevance, color="tab:blue")
        if names is not None:
            ax.set_xticks(np.arange(tokens), names, rotation=90, fontsize=7 if tokens > 24 else 9)
        else:
            ax.set_xlabel("token")
        ax.set_ylabel("relevance")
        ax.set_title(f"example {index}: share of the prediction per token (attention rollout)", fontsize=10)
        ax.set_xlim(-0.5, tokens - 0.5)
        return fig
