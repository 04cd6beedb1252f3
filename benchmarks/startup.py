"""Start-up time of the commands that do not train, against ``python -c "import torch"``.

Each command runs as a whole process (what a user waits for), the rounds interleaved with
the reference so that a machine growing busier or quieter affects both alike. Reports
the median wall time of each and the ratio command ÷ reference; the target is at most
1.5 for every command. The load average before and after is recorded: figures from a
busy machine say little.

    python benchmarks/startup.py [--quick] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_output import write_json
from rich.console import Console
from rich.table import Table

BIN = Path(sys.executable).parent
TARGET = 1.5

REFERENCE = ("import torch", [sys.executable, "-c", "import torch"])
COMMANDS = {
    "attnlab-plugins": ([str(BIN / "attnlab-plugins")], 0),
    "attnlab --help": ([str(BIN / "attnlab"), "--help"], 0),
    "attnlab modality=nope": ([str(BIN / "attnlab"), "modality=nope"], 2),
}
"""name → (argv, the exit code it must end with)."""


def timed(argv: list[str], expected_exit: int, cwd: Path) -> float:
    """Wall seconds of one run of ``argv``; a run that ends otherwise than expected is an error."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != expected_exit:
        raise SystemExit(f"{' '.join(argv)} exited {result.returncode}, expected {expected_exit}:\n{result.stderr}")
    return seconds


def measure(rounds: int) -> dict:
    """Interleaved rounds: the reference, then every command, ``rounds`` times."""
    times: dict[str, list[float]] = {name: [] for name in [REFERENCE[0], *COMMANDS]}
    with tempfile.TemporaryDirectory(prefix="attnlab-startup-") as folder:
        cwd = Path(folder)
        timed(REFERENCE[1], 0, cwd)  # warm the file cache once; not counted
        for argv, code in COMMANDS.values():
            timed(argv, code, cwd)
        for _ in range(rounds):
            times[REFERENCE[0]].append(timed(REFERENCE[1], 0, cwd))
            for name, (argv, code) in COMMANDS.items():
                times[name].append(timed(argv, code, cwd))
    reference = statistics.median(times[REFERENCE[0]])
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        ratio = median / reference
        rows.append({"command": name, "median_s": median, "times_s": samples, "ratio_vs_import_torch": ratio})
    return {"rows": rows, "target_ratio": TARGET}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds (default: 7)")
    parser.add_argument("--rounds", type=int, help="timed rounds (overrides --quick)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)

    load_before = os.getloadavg()
    results = measure(rounds)
    results.update(
        rounds=rounds,
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
    )

    table = Table(title=f"start-up, median of {rounds} interleaved runs (target: ≤ {TARGET}x import torch)")
    for column in ("command", "median s", "× import torch", "ok"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for row in results["rows"]:
        ratio = row["ratio_vs_import_torch"]
        table.add_row(row["command"], f"{row['median_s']:.2f}", f"{ratio:.2f}", "✓" if ratio <= TARGET else "✗")
    console = Console()
    console.print(table)
    console.print(f"load average before {load_before[0]:.1f}, after {results['load_average_after'][0]:.1f}")
    write_json(args.json, results, console)


if __name__ == "__main__":
    main()
