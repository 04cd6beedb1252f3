"""CoNLL-layout files as a text source: one token per line, one label per token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from attnlab.data import BadItems
from attnlab.errors import ConfigError, DataError
from attnlab.types import Task
from attnlab_text.sources import (
    Fraction,
    RawSplits,
    TextSource,
    TextSplit,
    bad_lines_note,
    carve,
    existing_file,
    read_text,
    token_split,
)


@dataclass(frozen=True)
class CoNLL(TextSource):
    """Token-labelled files: one token per line, columns split by ``separator``, blank lines between sentences.

    Lines starting with ``comment`` and ``-DOCSTART-`` lines are skipped. Every token
    line of a file has the same number of columns as its first; a ragged line is a bad
    input, and its sentence is left out (``data.bad_files=skip``) or named (``error``).

    Args:
        tokenizer, max_length: as for every :class:`TextSource`.
        train: the training file.
        val, test: optional files; missing ones are cut from ``train`` by ``split_seed``.
        token_column, label_column: column indices (negative counts from the end).
        separator: column separator; None splits at any whitespace.
        comment: prefix of comment lines.
        val_fraction, test_fraction: shares of ``train`` for missing splits.
        split_seed: fixes those splits.
    """

    predicts: ClassVar[Task] = "token"
    train: str | None = None
    val: str | None = None
    test: str | None = None
    token_column: int = 0
    label_column: int = -1
    separator: str | None = None
    comment: str = "#"
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1
    split_seed: int = 0

    def read(self, bad: BadItems) -> RawSplits:
        if self.train is None:
            raise ConfigError("data.source.train is not set; point it at a CoNLL file")
        splits = {
            name: None if path is None else self._read(existing_file(path, f"data.source.{name}"), bad)
            for name, path in (("train", self.train), ("val", self.val), ("test", self.test))
        }
        bad.stop_if_error()
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        return carve(splits, fractions, self.split_seed, stratify=False)

    def _read(self, path: Path, bad: BadItems) -> TextSplit:
        sentences: list[tuple[list[str], list[str]]] = []
        words: list[str] = []
        labels: list[str] = []
        broken = False  # the sentence has a bad line: left out whole
        width: tuple[int, int] | None = None  # (columns, first line with them)
        for n, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                if words and not broken:
                    sentences.append((words, labels))
                words, labels, broken = [], [], False
                continue
            if line.startswith(self.comment) or line.startswith("-DOCSTART-"):
                continue
            columns = line.split(self.separator)
            width = width or (len(columns), n)
            if len(columns) != width[0]:
                bad.add(
                    f"{path}:{n}",
                    f"{len(columns)} columns, but line {width[1]} has {width[0]}; every token line needs the same "
                    "columns (check data.source.separator); its sentence is left out",
                )
                broken = True
                continue
            words.append(self._column(columns, self.token_column, path, n).strip())
            labels.append(self._column(columns, self.label_column, path, n).strip())
        if words and not broken:
            sentences.append((words, labels))
        if not sentences:
            bad.stop_if_error()
            raise DataError(
                f"{path} has no usable sentences{bad_lines_note(bad, path)}; "
                "expected one token per line, blank lines between sentences"
            )
        return token_split([s[0] for s in sentences], [s[1] for s in sentences], str(path))

    @staticmethod
    def _column(columns: list[str], index: int, path: Path, n: int) -> str:
        try:
            return columns[index]
        except IndexError:
            raise DataError(
                f"{path}:{n}: no column {index} in {len(columns)} columns; "
                "set data.source.token_column / data.source.label_column"
            ) from None
