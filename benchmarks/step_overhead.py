"""What one training step costs on top of a hand-written step, and which part of attnlab pays it.

``loop_overhead.py`` measures whole runs; on a busy machine its differences of a few tenths
of a second drown in noise. This script isolates the per-step part: in one process it
trains the same model (attnlab's default, made tiny so that the loop's own cost is not
hidden behind the arithmetic) with

- ``plain``: a hand-written step (forward, loss, backward, optimizer and scheduler step,
  the loss and accuracy read back as numbers);
- ``lightning``: Lightning's loop with no callbacks, no logger and no ``self.log``;
- ``+ self.log``: the same with attnlab's per-step logging;
- ``default``: attnlab's default callbacks and logger;
- ``- <callback>``: the default without one callback (each in turn).

Each variant runs ``--steps`` steps per round, the rounds interleaved (the order reversed
every other round); a step's cost is the CPU time (``time.process_time``: every thread of
the process, so a progress bar's drawing thread counts) from one step's start to the next,
the median over a round, and the minimum over the rounds: the least disturbed estimate.

    python benchmarks/step_overhead.py [--quick] [--steps N] [--rounds R] [--threads T] [--full-size]
                                       [--json FILE] [-- overrides ...]

Run it under ``script -qc "..." /dev/null`` to see what the progress bar costs at a terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_output import write_json
from plain_loop import compose_config  # noqa: E402

TINY = ["backbone.dim=16", "backbone.depth=1", "backbone.heads=2", "data.image_size=32", "data.batch_size=16"]
BARE = [
    "~callbacks",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.enable_checkpointing=false",
    "~logger",
]
OFF_BY_TRAINER = {
    "rich_progress_bar": ["trainer.enable_progress_bar=false"],
    "rich_model_summary": ["trainer.enable_model_summary=false"],
}


def build(overrides: list[str], folder: Path):
    """The datamodule, model, callbacks and loggers ``attnlab <overrides>`` would train with."""
    from hydra.utils import instantiate

    from attnlab import config
    from attnlab.build import build_callbacks, build_datamodule, build_model

    cfg = compose_config(overrides, folder)
    datamodule, info = build_datamodule(cfg, "fit")
    with config.data_info(info):
        model = build_model(cfg)
        callbacks = build_callbacks(cfg)
        loggers = [instantiate(v) for v in (cfg.get("logger") or {}).values() if v is not None]
        trainer_cfg = cfg.trainer
    return cfg, info, trainer_cfg, datamodule, model, callbacks, loggers


def plain_steps(overrides: list[str], folder: Path, steps: int) -> list[float]:
    """CPU seconds between the starts of successive hand-written steps."""
    _, _, _, datamodule, model, _, _ = build(overrides, folder)
    optimizer = model.optimizer_factory(model.parameters())
    scheduler = model.scheduler_factory(optimizer, total_steps=steps) if model.scheduler_factory else None
    model.train()
    times, last = [], None
    for i, batch in enumerate(datamodule.train_dataloader()):
        now = time.process_time()
        if last is not None:
            times.append(now - last)
        last = now
        if i == steps:
            break
        logits, encoded = model(batch)
        loss = model.head.loss(logits, encoded.pad_mask, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        _ = float(loss.detach()), int((logits.detach().argmax(-1) == batch["target"]).sum())
    return times


def lightning_steps(overrides: list[str], folder: Path, steps: int, log: bool = True) -> list[float]:
    """CPU seconds between the starts of successive steps of Lightning's loop."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from attnlab import config

    _, info, trainer_cfg, datamodule, model, callbacks, loggers = build(overrides, folder)
    if not log:
        model.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
        model.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign]
    times: list[float] = []

    class StepClock(pl.Callback):
        last: float | None = None

        def on_train_batch_start(self, *args: object) -> None:
            now = time.process_time()
            if self.last is not None:
                times.append(now - self.last)
            self.last = now

    with config.data_info(info):
        trainer = instantiate(trainer_cfg, callbacks=[StepClock(), *callbacks], logger=loggers or False)
    trainer.fit(model, datamodule=datamodule)
    return times


def variants(overrides: list[str], folder: Path, steps: int) -> dict[str, Callable[[], list[float]]]:
    base = [
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={steps}",
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        *overrides,
    ]
    cfg = build(base, folder)[0]
    out: dict[str, Callable[[], list[float]]] = {
        "plain": lambda: plain_steps(base, folder, steps),
        "lightning": lambda: lightning_steps([*base, *BARE], folder, steps, log=False),
        "+ self.log": lambda: lightning_steps([*base, *BARE], folder, steps),
        "default": lambda: lightning_steps(base, folder, steps),
    }
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None or name == "attention_maps":
            continue
        off = OFF_BY_TRAINER.get(name, [f"callbacks.{name}=null"])
        out[f"- {name}"] = lambda off=off: lightning_steps([*base, *off], folder, steps)
    out["- logger"] = lambda: lightning_steps([*base, "~logger"], folder, steps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 30 steps (default: 5 rounds of 60)")
    parser.add_argument("--steps", type=int, help="steps per variant and round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--full-size", action="store_true", help=f"the default model, not the tiny one ({' '.join(TINY)})"
    )
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, after --")
    args = parser.parse_args()
    steps = args.steps or (30 if args.quick else 60)
    rounds = args.rounds or (2 if args.quick else 5)
    overrides = [*([] if args.full_size else TINY), *args.overrides]
    os.environ.setdefault("WANDB_MODE", "offline")
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # attnlab's threads module reads it

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="attnlab-steps-") as tmp:
        runs = variants(overrides, Path(tmp), steps)
        medians: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(rounds):
            for name in list(runs) if r % 2 == 0 else list(runs)[::-1]:
                times = runs[name]()[2:]  # the first steps pay for first-call set-up
                medians[name].append(statistics.median(times) * 1e3)
    best = {name: min(values) for name, values in medians.items()}
    results = {
        "overrides": overrides,
        "steps": steps,
        "rounds": rounds,
        "threads": args.threads,
        "ms_per_step": best,
        "round_medians_ms": medians,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }

    table = Table(title=f"CPU ms per training step ({' '.join(overrides)}; min over {rounds} rounds of medians)")
    for column in ("variant", "ms/step", "vs plain", "vs default"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, value in best.items():
        table.add_row(name, f"{value:.2f}", f"{value - best['plain']:+.2f}", f"{value - best['default']:+.2f}")
    console = Console()
    console.print(table)
    console.print(f"load average before {load_before[0]:.1f}, after {results['load_average_after'][0]:.1f}")
    write_json(args.json, results, console)


if __name__ == "__main__":
    main()
