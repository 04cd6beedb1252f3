"""The loop's own cost: ``attnlab`` against a hand-written PyTorch loop doing the same work.

Both run as whole processes (what a user waits for), interleaved in pairs whose order
alternates (ABBA), so that a machine growing busier or quieter affects both alike:

- ``attnlab trainer.max_epochs=E logger=csv [overrides]``, with the default callbacks;
- ``benchmarks/plain_loop.py`` with the same overrides: the same config, model, data,
  optimizer, schedule, seed and threads, trained, validated every epoch, checkpointed and
  tested by a plain PyTorch loop.

The two must end with the same metrics (they do the same arithmetic in the same order), or
the benchmark fails: a ratio between different work would mean nothing. Reports the
median wall time and CPU time (user + system of the process and its children, from
``getrusage(RUSAGE_CHILDREN)`` deltas) of each, and the ratios attnlab ÷ plain; the
target is at most 1.05. CPU time is the steadier figure on a shared machine, and the
ratio of the fastest runs (``ratio_cpu_min``) the steadiest: neighbours only ever add to a
process's CPU time (cache and core sharing); the load average before and after is recorded.
Each process also notes its CPU time when the interpreter begins to shut down (a
``sitecustomize`` both load): attnlab freezes its start-up heap, so the shutdown's final
garbage collections skip it, where a hand-written script pays them; the ratio up to that
point is the loop's cost without that difference.

``--ablate`` also runs attnlab with each default callback off in turn (read from the
composed config, so new callbacks are covered), without the sanity check, with W&B
(offline) as the logger, and bare (no callbacks, no logger, no sanity check), interleaved
with the pairs; a callback's cost is the default run's median minus the median without it.
``--hooks`` adds one untimed run under a CPU-time profiler (``hook_profiler.py``): the CPU
seconds spent inside each callback's hooks, steadier than differences of whole runs.
``--baseline BIN`` adds another installation's ``attnlab`` (a checkout before a change) to
every pair, so that before and after are measured under the same conditions.
``--tty`` runs every process in a pseudo-terminal, so the progress bar draws as it does for
a user at a terminal (by default output goes to a file, as in a batch job).

    python benchmarks/loop_overhead.py [--quick] [--pairs N] [--epochs E] [--threads T]
                                       [--ablate] [--hooks] [--baseline BIN] [--tty]
                                       [--json FILE] [-- overrides ...]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_output import write_json
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TARGET = 1.05
SAME_RESULT_TOLERANCE = 1e-4
"""Largest difference between the two runs' final losses and accuracies (float32 rounding)."""

OFF_BY_TRAINER = {
    "rich_progress_bar": ["trainer.enable_progress_bar=false"],
    "rich_model_summary": ["trainer.enable_model_summary=false"],
}
"""Callbacks that Lightning would replace by its own default when removed: turned off through the trainer.
(Without ``model_checkpoint`` Lightning adds none: the interrupt checkpoint is a ``Checkpoint`` too.)"""

BARE = [
    "~callbacks",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.enable_checkpointing=false",
    "trainer.num_sanity_val_steps=0",
    "~logger",
]


@dataclass
class Variant:
    """One kind of process in the benchmark and its measurements."""

    name: str
    what: str
    extra: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    callback_class: str | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    cpu_to_exit: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


AT_EXIT = "ATTNLAB_BENCH_CPU_AT_EXIT"
SITECUSTOMIZE = f"""import atexit, os, resource

_path, _pid = os.environ.get("{AT_EXIT}"), os.getpid()


def _cpu_at_exit():  # registered first, so it runs after every other atexit handler
    if _path and os.getpid() == _pid:  # not in forked loader workers
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(_path, "w") as f:
            f.write(repr(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime))


atexit.register(_cpu_at_exit)
"""
"""A ``sitecustomize`` module both processes load: their CPU seconds when the interpreter begins to
shut down, i.e. without the final collections of the shutdown (which attnlab's frozen start-up
heap skips and a hand-written script pays)."""


def children_cpu() -> float:
    """User + system seconds of all waited-for children (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _drain(fd: int, sink) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        sink.write(data)


def run_once(variant: Variant, folder: Path, index: int, env: dict[str, str], tty: bool) -> None:
    """Runs ``variant`` once in its own run folder and records wall and CPU seconds and its metrics."""
    out = folder / f"{variant.name}-{index}"
    argv = [a.replace("{out}", str(out)) for a in variant.argv]
    log = folder / f"{variant.name}-{index}.log"
    at_exit = folder / f"{variant.name}-{index}.cpu"
    env = {**env, AT_EXIT: str(at_exit)}
    with log.open("wb") as sink:
        cpu0, start = children_cpu(), time.perf_counter()
        if tty:  # a pseudo-terminal: the progress bar draws as in a user's terminal
            master, slave = pty.openpty()
            proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
            os.close(slave)
            reader = threading.Thread(target=_drain, args=(master, sink))
            reader.start()
            code = proc.wait()
            reader.join()
            os.close(master)
        else:
            code = subprocess.run(argv, cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT).returncode
        wall, cpu = time.perf_counter() - start, children_cpu() - cpu0
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{variant.name} exited {code}: {' '.join(argv)}\n{tail}")
    variant.wall.append(wall)
    variant.cpu.append(cpu)
    variant.cpu_to_exit.append(float(at_exit.read_text()))
    variant.metrics = json.loads((out / "metrics.json").read_text())


def callback_variants(overrides: list[str]) -> list[Variant]:
    """attnlab with each configured callback off, without the sanity check, with W&B, and bare."""
    from hydra import compose, initialize_config_dir

    from attnlab import config

    config.register_search_path()
    config.register_resolvers()
    with initialize_config_dir(config_dir=str(config.config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    built = {k: v for k, v in (cfg.get("callbacks") or {}).items() if v is not None and k != "attention_maps"}
    variants = []
    for name, node in built.items():
        off = OFF_BY_TRAINER.get(name, [f"callbacks.{name}=null"])
        target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        variants.append(Variant(f"no_{name}", f"without callbacks.{name}", off, callback_class=target))
    variants.append(Variant("no_sanity_check", "without the sanity check", ["trainer.num_sanity_val_steps=0"]))
    variants.append(Variant("logger_wandb", "W&B (offline) as the logger instead of CSV", ["logger=wandb"]))
    variants.append(Variant("bare", "no callbacks, no logger, no sanity check", BARE))
    return variants


def hook_costs(overrides: list[str], env: dict[str, str], folder: Path) -> dict[str, float]:
    """One untimed attnlab run with :class:`hook_profiler.CPUTimeProfiler`: CPU seconds in each callback's hooks."""
    from hook_profiler import by_callback

    path = folder / "hooks.json"
    profiler = f"trainer.profiler={{_target_:hook_profiler.CPUTimeProfiler,path:'{path}'}}"
    argv = [str(BIN / "attnlab"), *overrides, profiler, f"hydra.run.dir={folder / 'hooks'}"]
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))}
    with (folder / "hooks.log").open("wb") as sink:
        code = subprocess.run(argv, cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(
            f"the profiled run exited {code}:\n{(folder / 'hooks.log').read_text(errors='replace')[-3000:]}"
        )
    return by_callback(json.loads(path.read_text()))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def compare(a: dict[str, float], b: dict[str, float]) -> float:
    """The largest difference between two runs' shared final metrics."""
    keys = sorted(set(a) & set(b) & {"train/loss", "val/loss", "val/acc", "test/loss", "test/acc"})
    if not keys:
        raise SystemExit("the two runs share no final metrics to compare")
    return max(abs(a[k] - b[k]) for k in keys)


def measure(args: argparse.Namespace, overrides: list[str]) -> dict:
    attnlab = Variant("attnlab", "attnlab, default callbacks")
    plain = Variant("plain", "plain loop")
    plain.argv = [sys.executable, str(HERE / "plain_loop.py"), "--out", "{out}", *overrides]
    ablations = callback_variants(overrides) if args.ablate else []
    for v in [attnlab, *ablations]:
        v.argv = [str(BIN / "attnlab"), *overrides, *v.extra, "hydra.run.dir={out}"]
    if args.baseline is not None:  # another installation's attnlab, e.g. before a change
        baseline = Variant("baseline", f"attnlab from {args.baseline}")
        baseline.argv = [str(args.baseline), *overrides, "hydra.run.dir={out}"]
        ablations.insert(0, baseline)
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)

    with tempfile.TemporaryDirectory(prefix="attnlab-loop-") as tmp:
        folder = Path(tmp)
        site = folder / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))}
        # Warm the file cache with the imports both pay (not counted).
        subprocess.run([sys.executable, "-c", "import attnlab.build, attnlab_vision"], env=env, check=True)
        hooks = hook_costs(overrides, env, folder) if args.hooks else {}
        for i in range(args.pairs):
            order = [attnlab, plain] if i % 2 == 0 else [plain, attnlab]
            for variant in [*order, *(ablations if i % 2 == 0 else ablations[::-1])]:
                run_once(variant, folder, i, env, args.tty)
                took = f"{variant.wall[-1]:.1f} s wall, {variant.cpu[-1]:.1f} s CPU"
                print(f"pair {i + 1}/{args.pairs} {variant.name}: {took}", flush=True)

    difference = compare(attnlab.metrics, plain.metrics)
    if difference > SAME_RESULT_TOLERANCE:
        raise SystemExit(
            f"attnlab and the plain loop ended with different metrics (largest difference {difference:.2e}): "
            f"{attnlab.metrics} vs {plain.metrics}; they did not do the same work"
        )
    base_cpu, base_wall = median(attnlab.cpu), median(attnlab.wall)
    rows = []
    for v in [attnlab, plain, *ablations]:
        rows.append(
            {
                "name": v.name,
                "what": v.what,
                "overrides": v.extra,
                "wall_s": v.wall,
                "cpu_s": v.cpu,
                "median_wall_s": median(v.wall),
                "median_cpu_s": median(v.cpu),
                "cpu_to_exit_s": v.cpu_to_exit,
                "median_cpu_to_exit_s": median(v.cpu_to_exit),
                "cost_cpu_s": base_cpu - median(v.cpu) if v in ablations else None,
                "cost_wall_s": base_wall - median(v.wall) if v in ablations else None,
                "hooks_cpu_s": hooks.get(v.callback_class) if v.callback_class else None,
            }
        )
    return {
        "rows": rows,
        "ratio_wall": base_wall / median(plain.wall),
        "ratio_cpu": base_cpu / median(plain.cpu),
        "ratio_cpu_min": min(attnlab.cpu) / min(plain.cpu),
        "ratio_cpu_pairs": [a / p for a, p in zip(attnlab.cpu, plain.cpu)],
        "ratio_cpu_to_exit": median(attnlab.cpu_to_exit) / median(plain.cpu_to_exit),
        "baseline": None
        if args.baseline is None
        else {
            "bin": str(args.baseline),
            "ratio_cpu": median(ablations[0].cpu) / median(plain.cpu),
            "ratio_cpu_min": min(ablations[0].cpu) / min(plain.cpu),
            "ratio_wall": median(ablations[0].wall) / median(plain.wall),
        },
        "target_ratio": TARGET,
        "same_result_max_difference": difference,
        "metrics": attnlab.metrics,
        "hooks_cpu_s": hooks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 pair (default: 5 epochs, 3 pairs)")
    parser.add_argument("--pairs", type=int, help="interleaved pairs (overrides --quick)")
    parser.add_argument("--epochs", type=int, help="trainer.max_epochs (overrides --quick)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every process (default: attnlab's choice)")
    parser.add_argument("--ablate", action="store_true", help="also run attnlab with each default callback off")
    parser.add_argument("--baseline", type=Path, metavar="BIN", help="also run this attnlab executable in every pair")
    parser.add_argument("--hooks", action="store_true", help="also profile the CPU time of each callback's hooks")
    parser.add_argument("--tty", action="store_true", help="run every process in a pseudo-terminal (as a user's)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for both (after --)")
    args = parser.parse_args()
    args.pairs = args.pairs or (1 if args.quick else 3)
    epochs = args.epochs or (2 if args.quick else 5)
    overrides = [f"trainer.max_epochs={epochs}", "logger=csv", *args.overrides]

    load_before = os.getloadavg()
    results = measure(args, overrides)
    results.update(
        command=" ".join(sys.argv),
        overrides=overrides,
        pairs=args.pairs,
        threads=args.threads,
        tty=args.tty,
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
    )

    console = Console()
    table = Table(title=f"attnlab {' '.join(overrides)} vs a plain loop: medians of {args.pairs} interleaved pairs")
    for column in ("process", "wall s", "CPU s", "cost CPU s", "cost wall s", "in hooks CPU s"):
        table.add_column(column, justify="left" if column == "process" else "right")
    for row in results["rows"]:
        cost = row["cost_cpu_s"]
        table.add_row(
            row["what"],
            f"{row['median_wall_s']:.1f}",
            f"{row['median_cpu_s']:.2f}",
            "" if cost is None else f"{cost:+.2f}",
            "" if row["cost_wall_s"] is None else f"{row['cost_wall_s']:+.1f}",
            "" if row["hooks_cpu_s"] is None else f"{row['hooks_cpu_s']:.3f}",
        )
    console.print(table)
    if results["hooks_cpu_s"]:
        hooks = ", ".join(f"{name} {seconds:.3f}" for name, seconds in results["hooks_cpu_s"].items())
        console.print(f"CPU seconds inside each callback's hooks (one profiled run): {hooks}")
    ok = "✓" if results["ratio_cpu"] <= TARGET else "✗"
    console.print(
        f"attnlab ÷ plain: CPU {results['ratio_cpu']:.3f} {ok} (fastest runs {results['ratio_cpu_min']:.3f}, "
        f"pairs {', '.join(f'{r:.2f}' for r in results['ratio_cpu_pairs'])}), wall {results['ratio_wall']:.3f} "
        f"(target ≤ {TARGET}); same metrics within {results['same_result_max_difference']:.1e}"
    )
    to_exit = {row["name"]: row["median_cpu_to_exit_s"] for row in results["rows"]}
    console.print(
        f"CPU up to the interpreter's shutdown (without its final collections): attnlab {to_exit['attnlab']:.2f} s, "
        f"plain {to_exit['plain']:.2f} s, ratio {results['ratio_cpu_to_exit']:.3f}"
    )
    if results["baseline"] is not None:
        b = results["baseline"]
        fastest = f"fastest runs {b['ratio_cpu_min']:.3f}"
        console.print(f"baseline ÷ plain: CPU {b['ratio_cpu']:.3f} ({fastest}), wall {b['ratio_wall']:.3f}")
    console.print(f"load average before {load_before[0]:.1f}, after {results['load_average_after'][0]:.1f}")
    write_json(args.json, results, console)


if __name__ == "__main__":
    main()
