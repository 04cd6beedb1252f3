"""Where text examples come from: the text plugin's dataset sources.

A source is chosen by config (``data.source._target_``) and holds only its own settings,
plus the two every text source has (:class:`TextSource`): the ``tokenizer`` and
``max_length``. It reads its files into :class:`RawSplits` (strings); :func:`load_text`
then makes the classes, the tokenizer and the token ids.

- :class:`ListOps`: LRA's ListOps, generated into the data cache or read from LRA's files;
  one label per expression (its value) or per token (its nesting depth).
- :class:`TextFiles`: the user's CSV, TSV or JSONL, one label per text.
- :class:`~attnlab_text.conll.CoNLL`: token-per-line files, one label per token.
- :class:`HFDataset` (in :mod:`attnlab_text.hub`): a Hugging Face dataset.

Rows that cannot be parsed are reported to the run's bad-input list and left out
(``data.bad_files=skip``) or stop the run naming them (``data.bad_files=error``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from annotated_types import Ge, Gt, Lt

from attnlab.data import BadItems, LoadContext, SourceData
from attnlab.data.splits import random_split, stratified_split
from attnlab.errors import ConfigError, DataError
from attnlab.types import Batch, Task
from attnlab_text import listops
from attnlab_text.data import collate_text, load_text, sorted_labels, token_counts
from attnlab_text.tokenizer import ByteTokenizer, TextTokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


Fraction = Annotated[float, Gt(0), Lt(1)]


@dataclass
class TextSplit:
    """One split's examples, as strings.

    Attributes:
        texts: one string per example; for token labelling, its words joined by single spaces.
        targets: a label per example, or (token labelling) a label per word.
        words: the words of each example, for token labelling; None otherwise.
        origin: where the examples came from (a file), for error messages.
    """

    texts: list[str]
    targets: list[str] | list[list[str]]
    words: list[list[str]] | None = None
    origin: str = ""

    def subset(self, index: Sequence[int]) -> TextSplit:
        words = None if self.words is None else [self.words[i] for i in index]
        return TextSplit([self.texts[i] for i in index], [self.targets[i] for i in index], words, self.origin)


@dataclass
class RawSplits:
    """Train, validation and test examples, and the label names when the task fixes them."""

    train: TextSplit
    val: TextSplit
    test: TextSplit
    labels: list[str] | None = None

    @property
    def per_token(self) -> bool:
        return self.train.words is not None


def token_split(words: list[list[str]], labels: list[list[str]], origin: str) -> TextSplit:
    """A token-labelled split: the text of an example is its words joined by spaces."""
    return TextSplit([" ".join(w) for w in words], labels, words, origin)


@dataclass(frozen=True)
class TextSource:
    """What every text source has: a tokenizer and a length limit; subclasses add ``read``.

    Args:
        tokenizer: turns strings into ids (config group ``tokenizer``); None means bytes.
        max_length: longer token sequences are truncated (the count is logged per split).
    """

    tokenizer: TextTokenizer | None = None
    max_length: Annotated[int, Ge(1)] = 512

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ConfigError(f"data.source.max_length={self.max_length} must be >= 1")
        if self.tokenizer is None:
            object.__setattr__(self, "tokenizer", ByteTokenizer())

    def read(self, bad: BadItems) -> RawSplits:
        """The dataset's strings and labels, split; unparseable rows go to ``bad``."""
        raise NotImplementedError(f"{type(self).__name__} must define read()")

    def load(self, context: LoadContext) -> SourceData:
        assert self.tokenizer is not None
        return load_text(self.read(context.bad), self.tokenizer, self.max_length, context)

    def collate(self, examples: Sequence[dict[str, Any]]) -> Batch:
        return collate_text(examples)

    def raw_features(self, example: dict[str, Any]) -> Any:
        """Token counts (a bag of tokens): a ``(1, vocab_size)`` SciPy sparse row."""
        assert self.tokenizer is not None
        return token_counts(example["inputs"], self.tokenizer.vocab_size)


# --- reading files ------------------------------------------------------------------


def read_text(path: Path) -> str:
    """A file's text; invalid UTF-8 is replaced by U+FFFD, counted and logged, never fatal."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}; check the path") from exc
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path} is not a text file (it holds NUL bytes); give a UTF-8 CSV, TSV or JSONL file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("utf-8-sig", errors="replace")
        bad = text.count("\ufffd") - raw.decode("utf-8-sig", errors="ignore").count("\ufffd")
        log.warning("%s: %d invalid UTF-8 sequence(s) replaced with U+FFFD", path, bad)
        return text


def bad_lines_note(bad: BadItems, path: Path) -> str:
    """`` (its N bad lines were left out)`` when lines of ``path`` went to ``bad``."""
    n = sum(where.startswith(f"{path}:") for where, _ in bad.items)
    return f" (its {n} bad line(s) were left out: data.bad_files=skip)" if n else ""


def existing_file(path: str, key: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{key}={path} is not a file; point it at an existing file")
    return p


def carve(splits: dict[str, TextSplit | None], fractions: dict[str, float], seed: int, stratify: bool) -> RawSplits:
    """Fill missing validation/test splits with seeded shares of the training split.

    Args:
        splits: ``train`` (required), ``val`` and ``test`` (None: cut from train).
        fractions: the shares of missing splits, by name (``val``, ``test``).
        seed: fixes the cut.
        stratify: keep each label's share (one label per text); else at random.

    Raises:
        DataError: the cut cannot be made, with the counts (``attnlab.data.splits``).
    """
    missing = [name for name in ("val", "test") if splits[name] is None]
    train = splits["train"]
    assert train is not None
    if missing:
        shares = {f"{name}_fraction": fractions[name] for name in missing}
        if stratify:
            names = sorted_labels(str(t) for t in train.targets)
            index = {n: i for i, n in enumerate(names)}
            parts = stratified_split([index[str(t)] for t in train.targets], shares, seed, names)
        else:
            parts = random_split(len(train.texts), shares, seed)
        for name, part in zip(missing, parts[1:]):
            splits[name] = train.subset(part.tolist())
        train = train.subset(parts[0].tolist())
    return RawSplits(train, splits["val"], splits["test"])  # type: ignore[arg-type]


# --- ListOps ------------------------------------------------------------------------


@dataclass(frozen=True)
class ListOps(TextSource):
    """LRA's ListOps: LRA's TSV files in ``root`` when there, else generated under ``root/listops``.

    Args:
        tokenizer, max_length: as for every :class:`TextSource`.
        root: a folder holding LRA's ``basic_train.tsv``, ``basic_val.tsv``, ``basic_test.tsv``,
            or the data cache to generate into.
        labels: ``value`` (one of 10 per expression) or ``depth`` (per token, 1..max_depth-1).
        parentheses: keep LRA's ``(`` ``)`` tokens; they only repeat what the brackets say,
            and LRA's and S4's pipelines drop them.
        task: the file-name prefix (LRA: ``basic``).
        generation: settings of the generated files.
    """

    root: str | None = None
    labels: str = "value"
    parentheses: bool = False
    task: str = "basic"
    generation: listops.ListOpsGeneration = field(default_factory=listops.ListOpsGeneration)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels not in ("value", "depth"):
            raise ConfigError(f"data.source.labels={self.labels!r} is unknown; choose value or depth")

    @property
    def predicts(self) -> Task:
        """One label per expression (its value), or one per token (its depth)."""
        return "token" if self.labels == "depth" else "sequence"

    def folder(self) -> Path:
        if self.root is None:
            raise ConfigError("data.source.root is not set; give LRA's listops folder or a cache folder")
        root = Path(self.root).expanduser()
        if all(p.is_file() for p in listops.split_files(root, self.task).values()):
            log.info("ListOps: reading LRA files from %s (generation settings unused)", root)
            return root
        return listops.ensure_generated(root, self.generation, self.task)

    def read(self, bad: BadItems) -> RawSplits:
        files = listops.split_files(self.folder(), self.task)
        parts = {name: self._read(path, bad) for name, path in files.items()}
        if self.labels == "depth":
            names = [str(d) for d in range(1, self.generation.max_depth)]
        else:
            names = [str(v) for v in range(10)]
        return RawSplits(parts["train"], parts["val"], parts["test"], labels=names)

    def _read(self, path: Path, bad: BadItems) -> TextSplit:
        texts, targets, words = [], [], []
        for line, tokens, target in listops.iter_rows(path, bad):
            if not self.parentheses:
                tokens = [t for t in tokens if t not in listops.PARENS]
            if self.labels == "depth":
                depths = listops.depths(tokens)
                if max(depths, default=0) >= self.generation.max_depth:
                    raise DataError(
                        f"{path}:{line}: nesting depth {max(depths)} needs generation.max_depth >= {max(depths) + 1}; "
                        "raise data.source.generation.max_depth"
                    )
                words.append(tokens)
                targets.append([str(d) for d in depths])
            else:
                texts.append(" ".join(tokens))
                targets.append(target)
        if self.labels == "depth":
            return token_split(words, targets, str(path))
        return TextSplit(texts, targets, origin=str(path))


# --- the user's text files ----------------------------------------------------------


@dataclass(frozen=True)
class TextFiles(TextSource):
    """The user's CSV, TSV or JSONL files: one text and one label (any string) per row.

    A row that cannot be parsed (wrong number of fields, not a JSON object, an empty
    label) is a bad input: left out with ``data.bad_files=skip``, named with ``error``.

    Args:
        tokenizer, max_length: as for every :class:`TextSource`.
        train: the training file; its format comes from the suffix (``.csv``, ``.tsv``, ``.jsonl``).
        val, test: optional files; missing ones are cut from ``train`` (stratified, ``split_seed``).
        text_column, label_column: column names (JSON keys).
        val_fraction, test_fraction: shares of ``train`` for missing splits.
        split_seed: fixes those splits, independently of the training seed.
    """

    predicts: ClassVar[Task] = "sequence"
    train: str | None = None
    val: str | None = None
    test: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1
    split_seed: int = 0

    def read(self, bad: BadItems) -> RawSplits:
        if self.train is None:
            raise ConfigError("data.source.train is not set; point it at a CSV, TSV or JSONL file")
        splits = {
            name: None if path is None else self._read(existing_file(path, f"data.source.{name}"), bad)
            for name, path in (("train", self.train), ("val", self.val), ("test", self.test))
        }
        bad.stop_if_error()  # before cutting splits, which bad rows would only confuse
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        return carve(splits, fractions, self.split_seed, stratify=True)

    def _read(self, path: Path, bad: BadItems) -> TextSplit:
        kind = FORMATS.get(path.suffix.lower())
        if kind is None:
            raise DataError(f"{path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)}")
        rows = _jsonl_rows(path, bad) if kind == "jsonl" else _table_rows(path, "," if kind == "csv" else "\t", bad)
        texts, labels, blank = [], [], 0
        for where, row in rows:
            if row is None:
                blank += 1
                continue
            fields = self._fields(path, where, row, bad)
            if fields is not None:
                texts.append(fields[0])
                labels.append(fields[1])
        if blank:
            log.info("%s: skipped %d blank line(s)", path, blank)
        if not texts:
            bad.stop_if_error()
            raise DataError(f"{path} has no usable rows{bad_lines_note(bad, path)}; give a header and at least one row")
        return TextSplit(texts, labels, origin=str(path))

    def _fields(self, path: Path, where: int, row: dict[str, object], bad: BadItems) -> tuple[str, str] | None:
        for column in (self.text_column, self.label_column):
            if column not in row:
                raise DataError(
                    f"{path}:{where}: no column {column!r}; columns found: {', '.join(map(str, row))} "
                    "(set data.source.text_column / data.source.label_column)"
                )
        label = row[self.label_column]
        if label is None or str(label).strip() == "":
            bad.add(f"{path}:{where}", f"empty label in column {self.label_column!r}; fill it or drop the row")
            return None
        text = row[self.text_column]
        return ("" if text is None else str(text)), str(label).strip()


Rows = list[tuple[int, "dict[str, object] | None"]]


def _table_rows(path: Path, delimiter: str, bad: BadItems) -> Rows:
    """``(line, row)`` pairs of a CSV/TSV with a header; whitespace-only lines give ``None``.

    CSV follows the usual quoting rules; TSV has none (a quote is just a character). A row
    with another number of fields than the header goes to ``bad``.
    """
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DataError(f"{path}:1: cannot read the header ({exc})") from None
    if header is None:
        raise DataError(f"{path} is empty; give a header line naming the columns")
    header = [h.strip() for h in header]
    rows: Rows = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote
            bad.add(f"{path}:{reader.line_num}", f"not a {'CSV' if delimiter == ',' else 'TSV'} row: {exc}")
            continue
        if not "".join(values).strip():
            rows.append((reader.line_num, None))
            continue
        if len(values) != len(header):
            bad.add(
                f"{path}:{reader.line_num}",
                f"{len(values)} fields, but the header has {len(header)} ({', '.join(header)}); "
                "quote fields that contain the separator",
            )
            continue
        rows.append((reader.line_num, dict(zip(header, values))))


def _jsonl_rows(path: Path, bad: BadItems) -> Rows:
    rows: Rows = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            rows.append((n, None))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.add(f"{path}:{n}", f"not a JSON object ({exc.msg}); one object per line")
            continue
        if not isinstance(row, dict):
            bad.add(f"{path}:{n}", f"expected a JSON object, found {type(row).__name__}")
            continue
        rows.append((n, row))
    return rows
