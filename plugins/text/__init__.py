"""The text plugin: tokenizers (byte, char, word, BPE, WordPiece) and token embeddings; ListOps and your own text."""

from pathlib import Path

from attnlab.plugins import Plugin
from attnlab_text.conll import CoNLL
from attnlab_text.frontend import TokenEmbedding
from attnlab_text.hub import HFDataset
from attnlab_text.listops import ListOpsGeneration
from attnlab_text.sources import ListOps, TextFiles, TextSource
from attnlab_text.tokenizer import BPETokenizer, ByteTokenizer, CharTokenizer, WordPieceTokenizer, WordTokenizer

plugin = Plugin(
    name="text",
    description="tokenizers (byte, char, word, BPE, WordPiece), token embeddings; ListOps (LRA), text files, CoNLL, HF",
    config_dir=Path(__file__).parent / "conf",
    frontends=(TokenEmbedding,),
    sources=(ListOps, TextFiles, CoNLL, HFDataset),
)

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "CoNLL",
    "HFDataset",
    "ListOps",
    "ListOpsGeneration",
    "TextFiles",
    "TextSource",
    "TokenEmbedding",
    "WordPieceTokenizer",
    "WordTokenizer",
    "plugin",
]
