"""Tokenizers: strings to token ids, chosen with ``tokenizer=<name>``.

Every tokenizer reserves the same special ids, ``<pad>`` = 0, ``<unk>`` = 1 and ``<cls>`` = 2,
so padding and the embedding table agree whatever the vocabulary. ``byte`` needs no
training; ``char``, ``word``, ``bpe`` and ``wordpiece`` are Hugging Face ``tokenizers``
models trained on the training split, saved into the run folder and loaded back from it.

Besides ids, ``encode_offsets`` gives each token's character span ``[start, end)`` in the
text, which is how word labels are aligned to subwords.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from attnlab.errors import ConfigError, DataError

SPECIALS = ("<pad>", "<unk>", "<cls>")
PAD_ID, UNK_ID, CLS_ID = 0, 1, 2
SETTINGS_FILE = "settings.json"
HF_FILE = "tokenizer.json"
CHUNK = 4096
"""Texts encoded per ``encode_batch`` call, to bound the memory of Encoding objects."""

Offsets = np.ndarray
"""Character spans ``(N, 2)``, int64: token ``i`` covers ``text[start:end]``."""


class TextTokenizer(Protocol):
    """What the datamodule needs from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def needs_fit(self) -> bool: ...

    def settings(self) -> dict[str, Any]: ...

    def fit(self, texts: Sequence[str]) -> None: ...

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]: ...

    def encode_offsets(self, texts: Sequence[str]) -> list[tuple[np.ndarray, Offsets]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def save(self, folder: Path) -> None: ...

    def load(self, folder: Path) -> None: ...


def _write_settings(folder: Path, settings: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{SETTINGS_FILE}.tmp"
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    tmp.replace(folder / SETTINGS_FILE)


def check_saved(folder: Path, settings: dict[str, Any]) -> None:
    """Fail in one line when ``folder`` holds a tokenizer made with other settings."""
    path = folder / SETTINGS_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); delete {folder} to train the tokenizer again") from exc
    if saved != settings:
        raise ConfigError(
            f"{folder} holds a tokenizer made with {saved}, but data.source.tokenizer is {settings}; "
            "use a fresh run folder or the tokenizer settings it was trained with"
        )


class ByteTokenizer:
    """UTF-8 bytes: ids ``3 + byte``, 259 in all. Never unknown, lossless, nothing to train."""

    needs_fit = False
    vocab_size = len(SPECIALS) + 256

    def settings(self) -> dict[str, Any]:
        return {"kind": "byte"}

    def fit(self, texts: Sequence[str]) -> None:
        """Nothing to learn."""

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) + len(SPECIALS) for t in texts]

    def encode_offsets(self, texts: Sequence[str]) -> list[tuple[np.ndarray, Offsets]]:
        out = []
        for text, ids in zip(texts, self.encode(texts)):
            widths = [len(c.encode("utf-8")) for c in text]
            starts = np.repeat(np.arange(len(text), dtype=np.int64), widths)  # (bytes,) char index of each byte
            out.append((ids, np.stack([starts, starts + 1], axis=1)))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        raw = bytes(int(i) - len(SPECIALS) for i in ids if int(i) >= len(SPECIALS))
        return raw.decode("utf-8", errors="replace")

    def save(self, folder: Path) -> None:
        _write_settings(folder, self.settings())

    def load(self, folder: Path) -> None:
        check_saved(folder, self.settings())


class _TrainedTokenizer:
    """A Hugging Face ``tokenizers`` model trained on the training texts.

    Subclasses say which model, pre-tokenizer, decoder and trainer (``_blank``).
    """

    needs_fit = True

    def __init__(self) -> None:
        self.tokenizer: Tokenizer | None = None

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _blank(self) -> tuple[Tokenizer, trainers.Trainer]:
        raise NotImplementedError

    @property
    def ready(self) -> Tokenizer:
        if self.tokenizer is None:
            raise ConfigError(f"the {self.settings()['kind']} tokenizer is used before it was trained or loaded")
        return self.tokenizer

    @property
    def vocab_size(self) -> int:
        return self.ready.get_vocab_size(with_added_tokens=True)

    def fit(self, texts: Sequence[str]) -> None:
        tokenizer, trainer = self._blank()
        tokenizer.train_from_iterator(_chunks(texts), trainer=trainer, length=len(texts))
        _check_specials(tokenizer)
        self.tokenizer = tokenizer

    def _encodings(self, texts: Sequence[str]) -> Iterator[Any]:
        for i in range(0, len(texts), CHUNK):
            yield from self.ready.encode_batch(list(texts[i : i + CHUNK]), add_special_tokens=False)

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int64) for e in self._encodings(texts)]

    def encode_offsets(self, texts: Sequence[str]) -> list[tuple[np.ndarray, Offsets]]:
        return [
            (np.asarray(e.ids, dtype=np.int64), np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2))
            for e in self._encodings(texts)
        ]

    def decode(self, ids: Sequence[int]) -> str:
        return self.ready.decode([int(i) for i in ids], skip_special_tokens=True)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{HF_FILE}.tmp"
        self.ready.save(str(tmp))
        tmp.replace(folder / HF_FILE)
        _write_settings(folder, self.settings())

    def load(self, folder: Path) -> None:
        check_saved(folder, self.settings())
        try:
            tokenizer = Tokenizer.from_file(str(folder / HF_FILE))
        except Exception as exc:  # tokenizers raises plain Exceptions on bad files
            raise DataError(f"cannot load {folder / HF_FILE} ({exc}); delete {folder} to train it again") from exc
        _check_specials(tokenizer)
        self.tokenizer = tokenizer


def _chunks(texts: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(texts), CHUNK):
        yield list(texts[i : i + CHUNK])


def _check_specials(tokenizer: Tokenizer) -> None:
    ids = [tokenizer.token_to_id(s) for s in SPECIALS]
    if ids != [PAD_ID, UNK_ID, CLS_ID]:
        raise DataError(f"tokenizer special tokens {SPECIALS} have ids {ids}, expected {[PAD_ID, UNK_ID, CLS_ID]}")


def _lowercase(tokenizer: Tokenizer, lowercase: bool) -> None:
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()


class CharTokenizer(_TrainedTokenizer):
    """One token per character seen at least ``min_frequency`` times in training; others are ``<unk>``.

    Lossless for text made of known characters.

    Args:
        min_frequency: rarer characters become ``<unk>``.
        vocab_size: most tokens kept, specials included (the most frequent characters).
    """

    def __init__(self, min_frequency: int = 1, vocab_size: int = 2000) -> None:
        super().__init__()
        self.min_frequency, self.max_vocab = _positive("char", min_frequency, vocab_size)

    def settings(self) -> dict[str, Any]:
        return {"kind": "char", "min_frequency": self.min_frequency, "vocab_size": self.max_vocab}

    def _blank(self) -> tuple[Tokenizer, trainers.Trainer]:
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character
        tokenizer.decoder = decoders.Fuse()  # concatenate, no spaces between characters
        trainer = trainers.WordLevelTrainer(
            vocab_size=self.max_vocab,
            min_frequency=self.min_frequency,
            special_tokens=list(SPECIALS),
            show_progress=False,
        )
        return tokenizer, trainer


class WordTokenizer(_TrainedTokenizer):
    """Whitespace-separated words seen at least ``min_frequency`` times; others are ``<unk>``.

    Decoding joins words with single spaces, so it is lossless for single-spaced text of
    known words.

    Args:
        min_frequency: rarer words become ``<unk>``.
        vocab_size: most tokens kept, specials included (the most frequent words).
        lowercase: lowercase before splitting.
    """

    def __init__(self, min_frequency: int = 2, vocab_size: int = 50000, lowercase: bool = False) -> None:
        super().__init__()
        self.min_frequency, self.max_vocab = _positive("word", min_frequency, vocab_size)
        self.lowercase = lowercase

    def settings(self) -> dict[str, Any]:
        return {
            "kind": "word",
            "min_frequency": self.min_frequency,
            "vocab_size": self.max_vocab,
            "lowercase": self.lowercase,
        }

    def _blank(self) -> tuple[Tokenizer, trainers.Trainer]:
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        _lowercase(tokenizer, self.lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(
            vocab_size=self.max_vocab,
            min_frequency=self.min_frequency,
            special_tokens=list(SPECIALS),
            show_progress=False,
        )
        return tokenizer, trainer


class BPETokenizer(_TrainedTokenizer):
    """Byte-level BPE (GPT-2 style): merges learned on the training texts over a 256-byte alphabet.

    Never unknown and lossless: every string decodes back to itself.

    Args:
        vocab_size: tokens in all, specials and the 256 bytes included.
        min_frequency: a pair seen fewer times is never merged.
    """

    def __init__(self, vocab_size: int = 1000, min_frequency: int = 2) -> None:
        super().__init__()
        self.min_frequency, self.max_vocab = _positive("bpe", min_frequency, vocab_size)

    def settings(self) -> dict[str, Any]:
        return {"kind": "bpe", "vocab_size": self.max_vocab, "min_frequency": self.min_frequency}

    def _blank(self) -> tuple[Tokenizer, trainers.Trainer]:
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.max_vocab,
            min_frequency=self.min_frequency,
            special_tokens=list(SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        return tokenizer, trainer


class WordPieceTokenizer(_TrainedTokenizer):
    """BERT-style WordPiece: words (split at whitespace and punctuation) into ``##``-continued pieces.

    Decoding rejoins pieces and words with single spaces, so it is lossless only for
    single-spaced text without punctuation.

    Args:
        vocab_size: tokens in all, specials included.
        min_frequency: a pair seen fewer times is never merged.
        lowercase: lowercase first (BERT "uncased").
    """

    def __init__(self, vocab_size: int = 1000, min_frequency: int = 2, lowercase: bool = False) -> None:
        super().__init__()
        self.min_frequency, self.max_vocab = _positive("wordpiece", min_frequency, vocab_size)
        self.lowercase = lowercase

    def settings(self) -> dict[str, Any]:
        return {
            "kind": "wordpiece",
            "vocab_size": self.max_vocab,
            "min_frequency": self.min_frequency,
            "lowercase": self.lowercase,
        }

    def _blank(self) -> tuple[Tokenizer, trainers.Trainer]:
        tokenizer = Tokenizer(models.WordPiece(unk_token="<unk>", continuing_subword_prefix="##"))
        _lowercase(tokenizer, self.lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)
        trainer = trainers.WordPieceTrainer(
            vocab_size=self.max_vocab,
            min_frequency=self.min_frequency,
            special_tokens=list(SPECIALS),
            continuing_subword_prefix="##",
            show_progress=False,
        )
        return tokenizer, trainer


def _positive(kind: str, min_frequency: int, vocab_size: int) -> tuple[int, int]:
    if min_frequency < 1:
        raise ConfigError(f"data.source.tokenizer.min_frequency={min_frequency} for {kind} must be >= 1")
    if vocab_size <= len(SPECIALS):
        raise ConfigError(
            f"data.source.tokenizer.vocab_size={vocab_size} for {kind} must exceed the {len(SPECIALS)} specials"
        )
    return min_frequency, vocab_size


def load_or_fit(tokenizer: TextTokenizer, texts: Sequence[str], folder: Path | None) -> bool:
    """Load the tokenizer saved in ``folder``, or fit it on ``texts`` and save it there.

    Returns True when it was loaded, so evaluation uses exactly the training vocabulary.
    """
    if folder is not None and (folder / SETTINGS_FILE).is_file():
        tokenizer.load(folder)
        return True
    if tokenizer.needs_fit:
        if not any(t.strip() for t in texts):
            raise DataError("the training split has no text to train the tokenizer on; check the text column")
        tokenizer.fit(texts)
    if folder is not None:
        tokenizer.save(folder)
    return False
