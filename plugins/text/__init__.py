"""The text plugin: tokenizers (byte, char, word, BPE, WordPiece) and token embeddings; ListOps and your own text."""

from pathlib import Path

from attnlab.plugins import Plugin
from attnlab_text.data import TextDataModule
from attnlab_text.frontend import TokenEmbedding
from attnlab_text.hub import HFDataset
from attnlab_text.listops import ListOpsGeneration
from attnlab_text.sources import CoNLL, ListOps, TextFiles
from attnlab_text.tokenizer import BPETokenizer, ByteTokenizer, CharTokenizer, WordPieceTokenizer, WordTokenizer

plugin = Plugin(
    name="text",
    description="tokenizers (byte, char, word, BPE, WordPiece), token embeddings; ListOps (LRA), text files, CoNLL, HF",
    config_dir=Path(__file__).parent / "conf",
    frontends=(TokenEmbedding,),
    datamodules=(TextDataModule,),
)

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "CoNLL",
    "HFDataset",
    "ListOps",
    "ListOpsGeneration",
    "TextDataModule",
    "TextFiles",
    "TokenEmbedding",
    "WordPieceTokenizer",
    "WordTokenizer",
    "plugin",
]
