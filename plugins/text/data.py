"""Text datasets as a LightningDataModule: a source's strings → token ids → padded batches.

Set-up reads the source (:mod:`attnlab_text.sources`), fixes the label names, trains the
tokenizer on the training split (or loads the one saved in the run folder), and encodes
every split once. A batch is ``inputs`` ``(B, T)`` token ids padded with ``<pad>``,
``lengths`` ``(B,)`` and ``target``: ``(B,)`` for one label per text, or ``(B, T)`` padded
with ``IGNORE_INDEX`` for one label per token (only a word's first subword is labelled).

The run folder (``save_dir``, the training run's ``${paths.output_dir}``) keeps
``tokenizer/`` and ``labels.json``. A datamodule that finds them there loads them instead of
training, which is how ``attnlab-eval`` uses exactly the training vocabulary and classes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytorch_lightning as pl
import torch
from annotated_types import Ge
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from attnlab.errors import ConfigError, DataError
from attnlab.heads import IGNORE_INDEX
from attnlab_text.sources import RawSplits, Split, TextSource
from attnlab_text.tokenizer import CLS_ID, PAD_ID, ByteTokenizer, TextTokenizer, load_or_fit

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
LABELS_FILE = "labels.json"
TOKENIZER_DIR = "tokenizer"


class EncodedText(Dataset):
    """Token ids ``(T_i,)`` per example with a class id, or a class id per token."""

    def __init__(self, ids: list[np.ndarray], targets: list[int] | list[np.ndarray]) -> None:
        self.ids, self.targets = ids, targets

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"inputs": self.ids[i], "target": self.targets[i]}


def collate_text(examples: Sequence[dict[str, Any]], pad_id: int = PAD_ID) -> dict[str, torch.Tensor]:
    """Pads a batch: ``inputs`` ``(B, T)`` with ``pad_id``, ``lengths`` ``(B,)``, ``target`` ``(B,)`` or ``(B, T)``."""
    lengths = torch.tensor([len(ex["inputs"]) for ex in examples])
    width = int(lengths.max())
    inputs = torch.full((len(examples), width), pad_id, dtype=torch.long)
    for i, ex in enumerate(examples):
        inputs[i, : len(ex["inputs"])] = torch.as_tensor(ex["inputs"])
    targets = [ex["target"] for ex in examples]
    if isinstance(targets[0], np.ndarray):
        target = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for i, t in enumerate(targets):
            target[i, : len(t)] = torch.as_tensor(t)
    else:
        target = torch.tensor(targets, dtype=torch.long)
    return {"inputs": inputs, "lengths": lengths, "target": target}


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """Distinct labels in a stable order: numerically when all are integers, else alphabetically."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def _flat(targets: Sequence[Any]) -> Iterable[str]:
    for t in targets:
        yield from (t if isinstance(t, list) else [t])


def check_labels(split: Split, name: str, known: dict[str, int], where: str) -> None:
    """Fail naming the first label of ``split`` that is not a known class (``where`` says whose)."""
    for label in _flat(split.targets):
        if label not in known:
            shown = ", ".join(list(known)[:20]) + (", ..." if len(known) > 20 else "")
            raise DataError(
                f"label {label!r} in the {name} split ({split.origin}) {where}; known labels: {shown}. "
                "Remove those examples or add training examples with that label"
            )


def label_names(raw: RawSplits, save_dir: Path | None) -> list[str]:
    """The class names: saved in the run folder, fixed by the task, or the training labels."""
    saved = save_dir / LABELS_FILE if save_dir is not None else None
    if saved is not None and saved.is_file():
        names, where = json.loads(saved.read_text())["labels"], f"is not among the classes in {saved}"
    elif raw.labels is not None:
        names, where = raw.labels, "is not one of the task's classes"
    else:
        names, where = sorted_labels(_flat(raw.train.targets)), "never appears in train"
    known = {n: i for i, n in enumerate(names)}
    for name in SPLITS:
        check_labels(getattr(raw, name), name, known, where)
    if saved is not None and not saved.is_file():
        saved.parent.mkdir(parents=True, exist_ok=True)
        tmp = saved.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"labels": names}, indent=2) + "\n")
        tmp.replace(saved)
    return names


def first_subword_labels(offsets: np.ndarray, words: Sequence[str], labels: Sequence[int]) -> np.ndarray:
    """A label per token: a word's label on its first token, ``IGNORE_INDEX`` elsewhere.

    Args:
        offsets: ``(N, 2)`` character spans of the tokens in ``" ".join(words)``.
        words: the words; labels: a class id per word.

    Returns:
        ``(N,)`` class ids. Whitespace-only tokens and a word's later subwords are ignored.
    """
    if not words:
        return np.full(len(offsets), IGNORE_INDEX, dtype=np.int64)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])  # (W,) where each word begins
    char_word = np.full(int(starts[-1]) + len(words[-1]) + 1, -1)  # word index of each character, -1 for spaces
    for k, (start, word) in enumerate(zip(starts, words)):
        char_word[start : start + len(word)] = k
    ends = offsets[:, 1]
    word = np.where(ends > offsets[:, 0], char_word[np.clip(ends - 1, 0, len(char_word) - 1)], -1)  # (N,)
    first = (word >= 0) & (word != np.r_[-1, word[:-1]])
    out = np.full(len(offsets), IGNORE_INDEX, dtype=np.int64)
    out[first] = np.asarray(labels, dtype=np.int64)[word[first]]
    return out


def encode_split(
    name: str, split: Split, tokenizer: TextTokenizer, index: dict[str, int], max_length: int
) -> EncodedText:
    """Token ids (and aligned targets) of a split, truncated to ``max_length``; logs what was cut."""
    if split.words is not None:
        pairs = tokenizer.encode_offsets(split.texts)
        ids = [p[0] for p in pairs]
        targets: list[Any] = [
            first_subword_labels(offsets, words, [index[t] for t in labels])
            for (_, offsets), words, labels in zip(pairs, split.words, split.targets)
        ]
    else:
        ids = tokenizer.encode(split.texts)
        targets = [index[t] for t in split.targets]  # type: ignore[index]
    truncated = sum(len(x) > max_length for x in ids)
    if truncated:
        log.warning(
            "%s: %d of %d sequences were longer than data.max_length=%d and were truncated",
            name,
            truncated,
            len(ids),
            max_length,
        )
    empty = 0
    for i, x in enumerate(ids):
        if len(x) == 0:  # an empty text: one <cls> token, so every sequence has a real token
            empty += 1
            ids[i] = np.array([CLS_ID], dtype=np.int64)
            if split.words is not None:
                targets[i] = np.array([IGNORE_INDEX], dtype=np.int64)
        elif len(x) > max_length:
            ids[i] = x[:max_length]
            if split.words is not None:
                targets[i] = targets[i][:max_length]
    if empty:
        log.warning("%s: %d empty text(s) are encoded as a single <cls> token", name, empty)
    return EncodedText(ids, targets)


class BucketBatchSampler(BatchSampler):
    """Batches of similar lengths, to spend less time on padding.

    The sampler's order (shuffled for training) is cut into windows of ``window`` batches,
    each window is sorted by length and cut into batches, and (when ``shuffle``) the batches
    are shuffled. Lightning re-creates it around a distributed sampler under DDP.

    Args:
        sampler: the order of examples.
        batch_size: examples per batch.
        drop_last: drop the last, short batch.
        lengths: token count of each example.
        shuffle: shuffle the order of batches (training).
        window: batches per sorted window; larger is less padding and less randomness.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        lengths: Sequence[int],
        shuffle: bool = False,
        window: int = 50,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.shuffle, self.window = lengths, shuffle, window

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        span = self.batch_size * self.window
        batches: list[list[int]] = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=self.lengths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        ranks = torch.randperm(len(batches)).tolist() if self.shuffle else range(len(batches))
        for i in ranks:
            yield batches[i]


class TextDataModule(pl.LightningDataModule):
    """Text classification (one label per text) or tagging (one label per token) data.

    Args:
        source: where the examples come from (``attnlab_text.ListOps``, ``TextFiles``,
            ``CoNLL``, ``HFDataset``).
        tokenizer: turns strings into ids (config group ``tokenizer``); None means bytes.
        max_length: longer token sequences are truncated (the count is logged per split).
        batch_size: examples per batch.
        num_workers: DataLoader worker processes (the data is in memory; 0 is usually fastest).
        save_dir: the run folder, where the tokenizer and label names are saved and found again.
        bucket: batch examples of similar length together (less padding, faster).
    """

    def __init__(
        self,
        source: TextSource,
        tokenizer: TextTokenizer | None = None,
        max_length: Annotated[int, Ge(1)] = 512,
        batch_size: Annotated[int, Ge(1)] = 32,
        num_workers: Annotated[int, Ge(0)] = 0,
        save_dir: str | None = None,
        bucket: bool = True,
    ) -> None:
        super().__init__()
        if max_length < 1:
            raise ConfigError(f"data.max_length={max_length} must be >= 1")
        self.source = source
        self.tokenizer: TextTokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        self.max_length, self.batch_size, self.num_workers = max_length, batch_size, num_workers
        self.bucket = bucket
        self.save_dir = Path(save_dir).expanduser() if save_dir is not None else None
        self.labels: list[str] = []
        self.data: dict[str, EncodedText] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        raw = self.source.load()
        self.labels = label_names(raw, self.save_dir)
        folder = self.save_dir / TOKENIZER_DIR if self.save_dir is not None else None
        if load_or_fit(self.tokenizer, raw.train.texts, folder):
            log.info("loaded the tokenizer saved in %s", folder)
        index = {name: i for i, name in enumerate(self.labels)}
        for name in SPLITS:
            self.data[name] = encode_split(name, getattr(raw, name), self.tokenizer, index, self.max_length)

    @property
    def class_names(self) -> list[str]:
        """Label names in class order (the confusion matrix's axes)."""
        self.setup()
        return list(self.labels)

    def data_info(self) -> dict[str, Any]:
        """``num_classes``, ``vocab_size`` and ``pad_id`` for the model."""
        self.setup()
        return {"num_classes": len(self.labels), "vocab_size": self.tokenizer.vocab_size, "pad_id": PAD_ID}

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        data = self.data[name]
        collate = partial(collate_text, pad_id=PAD_ID)
        common = dict(num_workers=self.num_workers, collate_fn=collate, persistent_workers=self.num_workers > 0)
        if not self.bucket:
            return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, **common)
        sampler = RandomSampler(data) if shuffle else SequentialSampler(data)
        lengths = [len(ids) for ids in data.ids]
        batches = BucketBatchSampler(sampler, self.batch_size, False, lengths, shuffle=shuffle)
        return DataLoader(data, batch_sampler=batches, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
