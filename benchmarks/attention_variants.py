"""Attention variants: time and peak memory of one forward + backward per score and normalisation.

What is timed: one ``attnlab.backbone.SelfAttention`` (dim 192, 3 heads, so head size 64;
QKV and output projections included), in train mode with attention dropout 0, float32 on
the CPU, on an input ``(BATCH, T, 192)`` with ``requires_grad=True`` and no padding, for
every ``backbone.attention.score`` x ``backbone.attention.normalize`` at T = 256 and 1024.
One call = forward, then backward of ``(out * g).sum()`` with a fixed random ``g``.
``scaled_dot`` + ``softmax`` is the default and runs the fused
``F.scaled_dot_product_attention``; every other pair runs the explicit path, which holds
the ``(B, H, T, T)`` scores and weights; ``additive`` goes in query chunks recomputed in
the backward.

Method: after one warm-up call per case, ``--reps`` rounds; each round calls every case
once, in a shuffled order, so a noisy phase of a shared machine spreads over all cases.
Reported: the median and the fastest call. Peak memory is measured once per case with
``attnlab.callbacks.model_stats.LiveTensorBytes`` (the method of the ``ModelStats``
callback): the most bytes of tensors created during the call alive at once, forward and
backward, gradients included; inputs and weights made before the call do not count.

Usage::

    python benchmarks/attention_variants.py [--quick] [--json FILE] [--reps N]

The JSON is a list of rows with ``score``, ``normalize``, ``T``, ``peak_bytes``,
``seconds`` (the median), plus ``min_seconds``, ``batch``, ``dim``, ``heads``, ``fused``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from bench_output import write_json
from rich.console import Console
from rich.table import Table

from attnlab.backbone import NORMALIZE, SCORES, SelfAttention
from attnlab.callbacks.model_stats import LiveTensorBytes

DIM, HEADS, BATCH = 192, 3, 2
LENGTHS = (256, 1024)
SEED = 0

Call = Callable[[], None]


@dataclass
class Case:
    """One variant at one sequence length, and what was measured for it."""

    score: str
    normalize: str
    T: int
    batch: int = BATCH
    dim: int = DIM
    heads: int = HEADS
    fused: bool = False
    peak_bytes: int = 0
    times: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.score}/{self.normalize}/T={self.T}"

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        del row["times"]
        row["seconds"] = statistics.median(self.times)
        row["min_seconds"] = min(self.times)
        return row


def make_call(case: Case) -> Call:
    """Forward and backward of the case's attention on a fixed input."""
    torch.manual_seed(SEED)
    attn = SelfAttention(DIM, HEADS, score=case.score, normalize=case.normalize).train()
    case.fused = attn.fused
    x = torch.randn(case.batch, case.T, DIM, requires_grad=True)
    grad = torch.randn(case.batch, case.T, DIM)

    def call() -> None:
        out, _ = attn(x)
        (out * grad).sum().backward()
        x.grad = None
        attn.zero_grad(set_to_none=True)

    return call


def peak_bytes(call: Call) -> int:
    with LiveTensorBytes() as mode:
        mode.open()
        call()
        return mode.close()


def timed(call: Call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run(lengths: tuple[int, ...], reps: int, console: Console) -> list[Case]:
    cases = [Case(s, n, t) for t in lengths for s in SCORES for n in NORMALIZE]
    calls = {c.label: make_call(c) for c in cases}
    with console.status("warm-up and memory"):
        for c in cases:
            calls[c.label]()
            c.peak_bytes = peak_bytes(calls[c.label])
    order = list(cases)
    rng = random.Random(SEED)
    for rep in range(reps):
        rng.shuffle(order)
        with console.status(f"round {rep + 1}/{reps}"):
            for c in order:
                c.times.append(timed(calls[c.label]))
    return cases


def render(cases: list[Case], reps: int) -> Table:
    table = Table(
        title=f"SelfAttention forward + backward, dim {DIM}, {HEADS} heads, batch {BATCH}, fp32 CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, {reps} rounds"
    )
    for col, justify in (("score", "left"), ("normalize", "left"), ("T", "right"), ("path", "left")):
        table.add_column(col, justify=justify)
    for col in ("median ms", "min ms", "peak MiB", "x default time", "x default memory"):
        table.add_column(col, justify="right")
    default = {c.T: c for c in cases if c.fused}
    for c in cases:
        base = default[c.T]
        median = statistics.median(c.times)
        table.add_row(
            c.score,
            c.normalize,
            str(c.T),
            "fused SDPA" if c.fused else "explicit",
            f"{1e3 * median:.1f}",
            f"{1e3 * min(c.times):.1f}",
            f"{c.peak_bytes / 2**20:.1f}",
            f"{min(c.times) / min(base.times):.2f}",
            f"{c.peak_bytes / base.peak_bytes:.1f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=256 and 1024 with 2 rounds (default: 7)")
    parser.add_argument("--reps", type=int, help="timed rounds (overrides --quick)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON to FILE")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 7)
    console = Console()
    if not console.is_terminal:
        console.width = 140
    cases = run(LENGTHS, reps, console)
    console.print(render(cases, reps))
    console.print(
        "x default = relative to scaled_dot/softmax (the fused path) at the same T; time: of the fastest calls, "
        "which a shared machine disturbs least."
    )
    write_json(args.json, [c.row() for c in cases], console)


if __name__ == "__main__":
    main()
