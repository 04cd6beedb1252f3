"""ListOps, the Long Range Arena task: nested list operations over digits.

An expression is an operator applied to 2..``max_args`` arguments, each a digit or an
expression: ``MIN``, ``MAX``, ``MED`` (the median, rounded down) and ``SM`` (sum mod 10).
The label is the value, one of 10 classes. Expressions are written in LRA's file layout,
a TSV with ``Source`` and ``Target`` columns whose sources bracket every argument
(``( ( ( [MAX 2 ) 9 ) ] )``); as in LRA's and S4's pipelines, readers usually drop the
parentheses, leaving ``[MAX 2 9 ]``.

The generator follows LRA's ``lra_benchmarks/data/listops.py``: a node below
``max_depth`` is an operator with probability 0.25, an expression is kept when its
length (digits, operators and closing brackets; no parentheses) lies strictly between
``min_length`` and ``max_length``, and duplicates are dropped across all splits. It
differs only in using a seeded ``random.Random``, so a seed gives the same files.
"""

from __future__ import annotations

import csv
import random
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from attnlab.data.bad import BadItems
from attnlab.errors import DataError

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
PARENS = ("(", ")")
OPERATOR_P = 0.25
"""Probability that a node above the depth limit is an operator (LRA's ``VALUE_P``)."""

SPLITS = ("train", "val", "test")
Node = int | tuple[str, list["Node"]]


class _TooLong(Exception):
    """Raised while growing a tree that already exceeds the length limit."""


def apply(op: str, args: Sequence[int]) -> int:
    """The value of operator ``op`` on digit ``args``."""
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        return int(statistics.median(args))
    if op == "[SM":
        return sum(args) % 10
    raise DataError(f"unknown ListOps operator {op!r}; expected one of {', '.join(OPERATORS)}")


def evaluate(node: Node) -> int:
    """The value of an expression tree."""
    if isinstance(node, int):
        return node
    op, args = node
    return apply(op, [evaluate(a) for a in args])


def to_tokens(node: Node) -> list[str]:
    """LRA's string form as tokens: ``[MAX 2 9 ]`` is written ``( ( ( [MAX 2 ) 9 ) ] )``."""
    if isinstance(node, int):
        return [str(node)]
    op, args = node
    tokens = ["("] * (len(args) + 1) + [op]
    for arg in args:
        tokens += [*to_tokens(arg), ")"]
    return [*tokens, END, ")"]


@dataclass(frozen=True)
class ListOpsGeneration:
    """How the local ListOps files are generated (defaults: a CPU-sized variant).

    LRA's published settings are ``min_length=500, max_length=2000, max_depth=10,
    max_args=10`` with 96,000 / 2,000 / 2,000 examples (``experiment=listops_lra``).

    Attributes:
        seed: same seed, same files.
        train, val, test: number of examples per split.
        min_length, max_length: kept lengths, exclusive bounds, in tokens without parentheses.
        max_depth: LRA's depth limit; the root is at depth 1 and operators nest at most ``max_depth - 1`` deep.
        max_args: most arguments of one operator (at least 2).
    """

    seed: int = 0
    train: int = 20000
    val: int = 1000
    test: int = 2000
    min_length: int = 16
    max_length: int = 128
    max_depth: int = 6
    max_args: int = 5

    def folder_name(self, task: str) -> str:
        """A name that changes whenever a setting does, so old files are never reused wrongly."""
        return (
            f"{task}-seed{self.seed}-len{self.min_length}-{self.max_length}-depth{self.max_depth}"
            f"-args{self.max_args}-n{self.train}-{self.val}-{self.test}"
        )


class _Grower:
    """Grows one random tree the way LRA does, giving up once it is too long."""

    def __init__(self, rng: random.Random, g: ListOpsGeneration) -> None:
        self.rng, self.g, self.length = rng, g, 0

    def grow(self, depth: int) -> Node:
        if depth >= self.g.max_depth or self.rng.random() > OPERATOR_P:
            self._count(1)
            return self.rng.choice(range(10))
        self._count(2)  # the operator and its closing bracket
        n = self.rng.randint(2, self.g.max_args)
        args = [self.grow(depth + 1) for _ in range(n)]
        return self.rng.choice(OPERATORS), args

    def _count(self, n: int) -> None:
        self.length += n
        if self.length >= self.g.max_length:
            raise _TooLong


def generate(g: ListOpsGeneration) -> dict[str, list[tuple[str, int]]]:
    """``(source, value)`` rows per split; sources are unique across splits."""
    if g.max_args < 2 or g.max_depth < 1 or g.min_length >= g.max_length - 1:
        raise DataError(
            f"ListOps settings max_args={g.max_args}, max_depth={g.max_depth}, lengths {g.min_length}-{g.max_length} "
            "make no expressions; need max_args >= 2, max_depth >= 1 and min_length < max_length - 1"
        )
    rng = random.Random(g.seed)
    wanted = g.train + g.val + g.test
    rows: dict[str, int] = {}
    tries, limit = 0, max(1000, 2000 * wanted)
    while len(rows) < wanted:
        tries += 1
        if tries > limit:
            raise DataError(f"ListOps: {tries} tries gave only {len(rows)} of {wanted} expressions; widen the lengths")
        grower = _Grower(rng, g)
        try:
            tree = grower.grow(1)
        except _TooLong:
            continue
        if grower.length > g.min_length:
            rows.setdefault(" ".join(to_tokens(tree)), evaluate(tree))
    items = list(rows.items())
    return {"train": items[: g.train], "val": items[g.train : g.train + g.val], "test": items[g.train + g.val :]}


def write_tsv(path: Path, rows: Sequence[tuple[str, int]]) -> None:
    """LRA's layout: a header ``Source<TAB>Target``, then one expression per line."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["Source", "Target"])
        writer.writerows(rows)


def split_files(folder: Path, task: str = "basic") -> dict[str, Path]:
    """LRA's file names: ``basic_train.tsv``, ``basic_val.tsv``, ``basic_test.tsv``."""
    return {split: folder / f"{task}_{split}.tsv" for split in SPLITS}


def ensure_generated(root: Path, g: ListOpsGeneration, task: str = "basic") -> Path:
    """The folder of generated files under ``root/listops``, written once (atomically) and reused."""
    folder = root / "listops" / g.folder_name(task)
    if all(p.is_file() for p in split_files(folder, task).values()):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        for split, rows in generate(g).items():
            write_tsv(split_files(tmp, task)[split], rows)
        if folder.exists():  # an incomplete earlier attempt
            shutil.rmtree(folder)
        tmp.rename(folder)
    except OSError:
        if not all(p.is_file() for p in split_files(folder, task).values()):
            raise  # another process did not finish it for us
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def depths(tokens: Sequence[str]) -> list[int]:
    """Per token, the number of operators open at it (an operator and its ``]`` count their own).

    ``[MAX 2 [MIN 4 ] ]`` gives ``1 1 2 2 2 1``: the answer at a token depends on the whole prefix.
    """
    out, depth = [], 0
    for tok in tokens:
        if tok in OPERATORS:
            depth += 1
            out.append(depth)
        elif tok == END:
            out.append(depth)
            depth -= 1
        else:
            out.append(depth)
    return out


def iter_rows(path: Path, bad: BadItems | None = None) -> Iterator[tuple[int, list[str], str]]:
    """``(line number, source tokens, target)`` from an LRA ListOps TSV file.

    A row without two tab-separated columns is reported to ``bad`` and left out (without
    ``bad``: a :class:`DataError` naming it).
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or header[:2] != ["Source", "Target"]:
            raise DataError(f"{path}: expected LRA's header 'Source<TAB>Target', found {header}")
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                reason = f"expected 2 tab-separated columns, found {len(row)}"
                if bad is None:
                    raise DataError(f"{path}:{reader.line_num}: {reason}")
                bad.add(f"{path}:{reader.line_num}", reason)
                continue
            yield reader.line_num, row[0].split(), row[1].strip()
