"""Each parallel job's share of the cores: two jobs side by side against one job alone on half.

A job that starts one intra-op thread per core of the machine, next to another doing the
same, runs many more threads than there are cores. attnlab sets each job's threads from
the launcher's parallelism (:mod:`attnlab.threads`); this measures whether that holds its
promise: with ``launcher=joblib hydra.launcher.n_jobs=2``, each of two jobs should finish
within 1.3x of one job running alone on half the cores (``taskset`` to half the CPUs,
where attnlab takes its threads from the affinity). Three cases, interleaved over rounds:

- ``alone on half``: ``taskset -c <half> attnlab seed=1 ...``;
- ``joblib, 2 at once``: ``attnlab -m launcher=joblib hydra.launcher.n_jobs=2 seed=1,2 ...``;
- ``joblib, every job all cores``: the same with ``OMP_NUM_THREADS=<all CPUs>`` forced into
  both jobs, what happens without a per-job share (for contrast).

A job's time is its training time: from the start of training to the end of its last
epoch, as its own ``history/epochs.jsonl`` records it (what the cores' share changes; a
joblib worker also checks and imports inside the job, which one process alone does before
it, so the job's whole time from ``job.json`` is reported beside it). Reports the medians
and the ratio of the slower parallel job to the job alone.

    python benchmarks/thread_share.py [--rounds N] [--json FILE] [-- overrides ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from bench_output import write_json
from rich.console import Console
from rich.table import Table

BIN = Path(sys.executable).parent
TARGET = 1.3
WORK = ["trainer.max_epochs=10", "logger=csv", "trainer.enable_progress_bar=false"]
"""The default experiment (ViT on the embedded digits), shortened."""


def job_seconds(folder: Path) -> tuple[float, float]:
    """(training, whole job) seconds of the job in ``folder``; a job that did not finish is an error."""
    status = json.loads((folder / "job.json").read_text())
    if status.get("status") != "completed":
        raise SystemExit(f"{folder}: job ended {status.get('status')}: {status.get('error')}")
    whole = (datetime.fromisoformat(status["finished"]) - datetime.fromisoformat(status["started"])).total_seconds()
    epochs = (folder / "history" / "epochs.jsonl").read_text().splitlines()
    return json.loads(epochs[-1])["time"], whole


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        argv, cwd=cwd, env={**os.environ, "WANDB_MODE": "offline", **(env or {})}, text=True, capture_output=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr[-3000:]}")


def measure(rounds: int, overrides: list[str]) -> dict[str, list[float]]:
    cpus = sorted(os.sched_getaffinity(0))
    half = ",".join(str(c) for c in cpus[: max(1, len(cpus) // 2)])
    times: dict[str, list[tuple[float, float]]] = {
        "alone on half": [],
        "joblib, 2 at once": [],
        "joblib, every job all cores": [],
    }
    with tempfile.TemporaryDirectory(prefix="attnlab-threads-") as tmp:
        cwd = Path(tmp)
        for r in range(rounds):
            alone = cwd / f"alone{r}"
            run(["taskset", "-c", half, str(BIN / "attnlab"), f"hydra.run.dir={alone}", "seed=1", *overrides], cwd)
            times["alone on half"].append(job_seconds(alone))
            for name, env in (
                ("joblib, 2 at once", None),
                ("joblib, every job all cores", {"OMP_NUM_THREADS": str(len(cpus))}),
            ):
                sweep = cwd / f"sweep{r}-{len(times[name])}"
                argv = [
                    str(BIN / "attnlab"),
                    "-m",
                    "launcher=joblib",
                    "hydra.launcher.n_jobs=2",
                    f"hydra.sweep.dir={sweep}",
                ]
                run([*argv, "seed=1,2", *overrides], cwd, env)
                times[name].append(max(job_seconds(sweep / "0"), job_seconds(sweep / "1")))  # the slower to train
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to FILE")
    parser.add_argument("overrides", nargs="*", help=f"attnlab overrides (default: {' '.join(WORK)})")
    args = parser.parse_args()
    overrides = args.overrides or WORK
    load_before = os.getloadavg()[0]
    times = measure(args.rounds, overrides)
    alone = statistics.median(t for t, _ in times["alone on half"])
    alone_job = statistics.median(j for _, j in times["alone on half"])
    title = f"training time (median of {args.rounds}; parallel: the slower job; target ≤ {TARGET}x alone)"
    table = Table(title=title)
    for column in ("case", "training s", "× alone on half", "ok", "whole job s", "× alone"):
        table.add_column(column, justify="left" if column == "case" else "right")
    results = {}
    for name, values in times.items():
        median = statistics.median(t for t, _ in values)
        job = statistics.median(j for _, j in values)
        ratio = median / alone
        results[name] = {
            "training_s": [t for t, _ in values],
            "job_s": [j for _, j in values],
            "median_training_s": median,
            "ratio": ratio,
            "median_job_s": job,
            "job_ratio": job / alone_job,
        }
        ok = "" if name.startswith("alone") or "all cores" in name else ("✓" if ratio <= TARGET else "✗")
        table.add_row(name, f"{median:.1f}", f"{ratio:.2f}", ok, f"{job:.0f}", f"{job / alone_job:.2f}")
    console = Console()
    console.print(table)
    load = (load_before, os.getloadavg()[0])
    console.print(
        f"{os.cpu_count()} CPUs; overrides: {' '.join(overrides)}; "
        f"load average before {load[0]:.1f}, after {load[1]:.1f}"
    )
    record = {"target": TARGET, "overrides": overrides, "cpus": os.cpu_count(), "load_average": load, "cases": results}
    write_json(args.json, record, console)


if __name__ == "__main__":
    main()
