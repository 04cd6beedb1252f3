"""Text examples as model inputs: a source's strings → token ids → padded batches.

:func:`load_text` runs after a text source has read its strings (:mod:`attnlab_text.sources`):
it fixes the label names, trains the tokenizer on the training split (or loads the one
saved in the run folder), and encodes every split once. A batch is ``inputs`` ``(B, T)``
token ids padded with ``<pad>``, ``lengths`` ``(B,)`` and ``target``: ``(B,)`` for one label
per text, or ``(B, T)`` padded with ``IGNORE_INDEX`` for one label per token (only a word's
first subword is labelled).

The run folder (``data.save_dir``, the training run's ``${paths.output_dir}``) keeps
``tokenizer/`` and ``labels.json``. A set-up that finds them there loads them instead of
training, which is how ``attnlab-eval`` uses exactly the training vocabulary and classes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from attnlab.data import LoadContext, SourceData, Split
from attnlab.errors import DataError
from attnlab.types import IGNORE_INDEX, Batch
from attnlab_text.tokenizer import CLS_ID, PAD_ID, TextTokenizer, load_or_fit

if TYPE_CHECKING:
    from attnlab_text.sources import RawSplits, TextSplit

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


def collate_text(examples: Sequence[dict[str, Any]], pad_id: int = PAD_ID) -> Batch:
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


def token_counts(ids: np.ndarray, vocab_size: int) -> Any:
    """A text as a bag of tokens: a ``(1, vocab_size)`` SciPy sparse row of token counts."""
    import scipy.sparse

    tokens, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
    rows = np.zeros(len(tokens), dtype=np.int64)
    return scipy.sparse.csr_matrix((counts.astype(np.float32), (rows, tokens)), shape=(1, vocab_size))


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


def check_labels(split: TextSplit, name: str, known: dict[str, int], where: str) -> None:
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
    name: str, split: TextSplit, tokenizer: TextTokenizer, index: dict[str, int], max_length: int
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
            "%s: %d of %d sequences were longer than data.source.max_length=%d and were truncated",
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


def load_text(raw: RawSplits, tokenizer: TextTokenizer, max_length: int, context: LoadContext) -> SourceData:
    """Label names, the tokenizer (trained on train, or loaded from the run folder) and encoded splits."""
    labels = label_names(raw, context.save_dir)
    folder = context.save_dir / TOKENIZER_DIR if context.save_dir is not None else None
    if load_or_fit(tokenizer, raw.train.texts, folder):
        log.info("loaded the tokenizer saved in %s", folder)
    index = {name: i for i, name in enumerate(labels)}
    splits = []
    for name in SPLITS:
        encoded = encode_split(name, getattr(raw, name), tokenizer, index, max_length)
        per_example = None if raw.per_token else np.asarray(encoded.targets, dtype=np.int64)
        lengths = np.asarray([len(ids) for ids in encoded.ids], dtype=np.int64)
        splits.append(Split(encoded, labels=per_example, lengths=lengths, origin=getattr(raw, name).origin))
    task = "token" if raw.per_token else "sequence"
    return SourceData(
        *splits, task=task, class_names=labels, values={"vocab_size": tokenizer.vocab_size, "pad_id": PAD_ID}
    )
