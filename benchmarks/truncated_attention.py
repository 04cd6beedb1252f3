"""Truncated (local-window) attention: attnlab's blockwise path against a dense band mask.

What is timed: the attention on its own, forward and backward, in float32 on the CPU.
``q``, ``k`` and ``v`` are leaf tensors ``(1, 4, T, 64)`` (batch 1, 4 heads, head size 64,
i.e. dim 256) with ``requires_grad=True``, made directly rather than by a projection, so
the figures hold only the attention. Window: 64 frames on each side (``left = right =
64``). The backward gets a fixed random gradient made before the call.

- ``blocked``: ``attnlab.backbone.local.local_attention``, what
  ``SelfAttention(window=64)`` runs.
- ``dense``: the ``T x T`` boolean band mask, built inside the call (by broadcasting,
  so no integer ``T x T`` tensor), passed to ``F.scaled_dot_product_attention``; PyTorch
  runs its flash kernel for it on the CPU, which converts the mask to a float ``T x T``.

Method: every (path, T) case runs in a fresh subprocess. It first runs the path once at
T=256 (loading kernels and thread pools), then reads ``VmRSS`` from ``/proc/self/status``,
resets the peak (``VmHWM``, by writing 5 to ``/proc/self/clear_refs``), runs forward and
backward once, and reports ``peak memory = VmHWM - VmRSS before``: what the call added at
its peak, including its output and the three gradients (4 x 16 MiB at T=16k, the floor
for any implementation). Then it times ``--reps`` further calls with
``time.perf_counter``. The whole set of cases runs ``--rounds`` times, interleaved, because
the machine has noisy phases: reported are the fastest call over all rounds, the median,
and the largest peak memory of any round. Temporaries may land in heap pages the process
already holds (freed by the warm-up), as they do in a training process; ``--trim-heap``
hands those back first (glibc ``malloc_trim``), so every page the call touches counts.

Usage::

    python benchmarks/truncated_attention.py [--quick] [--json FILE] [--reps N] [--rounds N] [--trim-heap]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from bench_output import write_json
from rich.console import Console
from rich.table import Table
from torch import Tensor

from attnlab.backbone.local import local_attention

BATCH, HEADS, HEAD_DIM, WINDOW = 1, 4, 64, 64
LENGTHS = (1024, 2048, 4096, 8192, 16384)
QUICK_LENGTHS = (1024, 2048, 4096)
WARMUP_T = 256
SEED = 0
TARGETS = {"growth_per_doubling": 2.2, "memory_fraction": 1 / 20, "speedup": 10.0}

Attention = Callable[[Tensor, Tensor, Tensor], Tensor]


def blocked(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return local_attention(q, k, v, left=WINDOW, right=WINDOW)


def dense(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    idx = torch.arange(q.shape[2])
    keys, queries = idx[None, :], idx[:, None]  # broadcast: no int64 T x T tensor
    mask = (keys >= queries - WINDOW) & (keys <= queries + WINDOW)  # (T, T) bool
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


PATHS: dict[str, Attention] = {"blocked": blocked, "dense": dense}


def proc_status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def inputs(t: int) -> tuple[list[Tensor], Tensor]:
    shape = (BATCH, HEADS, t, HEAD_DIM)
    return [torch.randn(shape, requires_grad=True) for _ in range(3)], torch.randn(shape)


def step(attention: Attention, qkv: list[Tensor], grad: Tensor) -> None:
    for x in qkv:
        x.grad = None
    out = attention(*qkv)
    out.backward(grad)


def kernel_of(attention: Attention) -> str:
    """The fused-attention op the path runs (from the profiler, on the warm-up size)."""
    qkv, grad = inputs(WARMUP_T)
    with torch.profiler.profile() as prof:
        step(attention, qkv, grad)
    names = {e.name for e in prof.events() if e.name.startswith("aten::_scaled_dot_product")}
    return ", ".join(sorted(n.removeprefix("aten::") for n in names if "backward" not in n)) or "?"


def measure(path: str, t: int, reps: int, trim_heap: bool = False) -> dict[str, Any]:
    """One case, in this (fresh) process: peak memory of the first call, then timings."""
    torch.manual_seed(SEED)
    attention = PATHS[path]
    kernel = kernel_of(attention)
    qkv, grad = inputs(t)
    gc.collect()
    if trim_heap:  # hand freed heap pages back, so the call cannot reuse them unseen
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = proc_status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    step(attention, qkv, grad)
    peak = proc_status("VmHWM") - before
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step(attention, qkv, grad)
        times.append(time.perf_counter() - start)
    return {"peak_bytes": peak, "s": min(times), "median_s": statistics.median(times), "kernel": kernel}


def run_case(path: str, t: int, reps: int, trim_heap: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--case", path, str(t), "--reps", str(reps)] + ["--trim-heap"] * trim_heap
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One case over all rounds: fastest time, median of the rounds' medians, largest peak."""
    return {
        "peak_bytes": max(r["peak_bytes"] for r in rounds),
        "s": min(r["s"] for r in rounds),
        "median_s": statistics.median(r["median_s"] for r in rounds),
        "kernel": rounds[0]["kernel"],
        "round_peaks": [r["peak_bytes"] for r in rounds],
        "round_s": [r["s"] for r in rounds],
    }


def row(t: int, cases: dict[str, dict[str, Any]], trim_heap: bool) -> dict[str, Any]:
    b, d = cases["blocked"], cases["dense"]
    return {
        "T": t,
        "window": WINDOW,
        "blocked_peak_bytes": b["peak_bytes"],
        "dense_peak_bytes": d["peak_bytes"],
        "blocked_s": b["s"],
        "dense_s": d["s"],
        "blocked_median_s": b["median_s"],
        "dense_median_s": d["median_s"],
        "blocked_round_peak_bytes": b["round_peaks"],
        "dense_round_peak_bytes": d["round_peaks"],
        "blocked_round_s": b["round_s"],
        "dense_round_s": d["round_s"],
        "memory_fraction": b["peak_bytes"] / d["peak_bytes"],
        "speedup": d["s"] / b["s"],
        "blocked_kernel": b["kernel"],
        "dense_kernel": d["kernel"],
        "left": WINDOW,
        "right": WINDOW,
        "batch": BATCH,
        "heads": HEADS,
        "head_dim": HEAD_DIM,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "memory": "VmHWM (reset before the call) - VmRSS before the call, fresh process per case; largest over rounds",
        "time": "fastest forward+backward call over all rounds (median in *_median_s)",
        "trim_heap": trim_heap,
    }


def render(rows: list[dict[str, Any]], quick: bool) -> Table:
    mode = ("quick" if quick else "full") + (", heap trimmed" if rows[0]["trim_heap"] else "")
    table = Table(
        title=f"truncated attention fwd+bwd, left=right={WINDOW}, B={BATCH} H={HEADS} d={HEAD_DIM}, fp32 CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, {mode}"
    )
    for col in ("T", "blocked MiB", "dense MiB", "blocked/dense mem", "growth", "blocked s", "dense s", "speedup"):
        table.add_column(col, justify="right")
    prev = None
    for r in rows:
        growth = "" if prev is None else f"{r['blocked_peak_bytes'] / prev['blocked_peak_bytes']:.2f}x"
        table.add_row(
            f"{r['T']:,}",
            f"{r['blocked_peak_bytes'] / 2**20:.1f}",
            f"{r['dense_peak_bytes'] / 2**20:.1f}",
            f"1/{1 / r['memory_fraction']:.1f}",
            growth,
            f"{r['blocked_s']:.3f}",
            f"{r['dense_s']:.3f}",
            f"{r['speedup']:.0f}x",
        )
        prev = r
    return table


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The project's targets, each with its measured value."""
    growth = max(b["blocked_peak_bytes"] / a["blocked_peak_bytes"] for a, b in zip(rows, rows[1:]))
    lines = [f"blocked memory growth per doubling of T: max {growth:.2f}x (target <= 2.2x)"]
    last = rows[-1]
    if last["T"] < LENGTHS[-1]:
        lines.append(f"T={LENGTHS[-1]:,} targets (memory <= 1/20 of dense, >= 10x faster) need the full run")
        return lines
    lines.append(f"T={last['T']:,}: blocked adds 1/{1 / last['memory_fraction']:.1f} of dense's memory (target 1/20)")
    lines.append(f"T={last['T']:,}: blocked is {last['speedup']:.0f}x faster than dense (target 10x)")
    lines.append(f"kernels: blocked {last['blocked_kernel']}; dense {last['dense_kernel']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"T up to {QUICK_LENGTHS[-1]} and 3 timed calls")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON to FILE")
    parser.add_argument("--case", nargs=2, metavar=("PATH", "T"), help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=None, help="timed calls per case (default 3 quick, 5 full)")
    parser.add_argument(
        "--trim-heap",
        action="store_true",
        help="malloc_trim before each measured call (stricter: no reuse of freed pages)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds over all cases (default 1 quick, 2 full)")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 2)
    if args.case is not None:  # the child process of one case
        print(json.dumps(measure(args.case[0], int(args.case[1]), reps, args.trim_heap)))
        return
    console = Console()
    if not console.is_terminal:
        console.width = 140  # keep the table unwrapped when piped to a file
    lengths = QUICK_LENGTHS if args.quick else LENGTHS
    results: dict[tuple[str, int], list[dict[str, Any]]] = {(p, t): [] for p in PATHS for t in lengths}
    for n in range(rounds):
        for t in lengths:
            with console.status(f"round {n + 1}/{rounds}, T={t}: blocked and dense, each in a fresh process"):
                for path in PATHS:
                    results[path, t].append(run_case(path, t, reps, args.trim_heap))
    rows = [row(t, {path: merge(results[path, t]) for path in PATHS}, args.trim_heap) for t in lengths]
    console.print(render(rows, args.quick))
    for line in verdicts(rows):
        console.print(line)
    write_json(args.json, rows, console)


if __name__ == "__main__":
    main()
