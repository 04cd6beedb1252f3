"""The hand-written PyTorch loop that ``loop_overhead.py`` holds ``attnlab`` against.

It does the work of ``attnlab <overrides>`` without Lightning's loop: the same config
(composed by Hydra from the same overrides), the same model, datamodule, optimizer and
schedule (built by attnlab's own build functions), the same seed and threads; then, by
hand, ``max_epochs`` epochs of training with the scheduler stepped every batch, a
validation pass after each epoch, ``best.ckpt`` written when the validation accuracy
improves and ``last.ckpt`` every epoch, a final test of the best weights and the test split's baselines. Metrics
are plain sums (loss weighted by batch size, accuracy as argmax hits) and end in
``metrics.json``, as attnlab's do.

What it leaves out is what attnlab adds on top: logging to a logger, the progress bar,
the model summary and statistics, throughput, the NaN guard, the confusion matrix, the
sanity check. Only settings it implements are accepted: a config that asks for anything
else (gradient clipping, accumulation, another head) is refused, so the two never do
different work silently.

    python benchmarks/plain_loop.py --out DIR [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from lightning_fabric.utilities.data import _set_sampler_epoch
from omegaconf import DictConfig, open_dict

from attnlab import baselines, config, threads
from attnlab.build import build_datamodule, build_model
from attnlab.heads import SequenceHead
from attnlab.module import AttnlabModule
from attnlab.optim import param_groups

SUPPORTED_TRAINER = {
    "accelerator": ("auto", "cpu"),
    "devices": (1,),
    "num_nodes": (1,),
    "precision": ("32-true", "32", 32),
    "max_steps": (-1,),
    "accumulate_grad_batches": (1,),
    "gradient_clip_val": (None,),
    "check_val_every_n_epoch": (1,),
    "val_check_interval": (None,),
    "overfit_batches": (0, 0.0),
    "fast_dev_run": (False,),
}
"""Trainer settings this loop implements; any other value is refused."""


def compose_config(overrides: list[str], out: Path) -> DictConfig:
    """The config ``attnlab <overrides>`` would run, with its run folder at ``out``."""
    config.register_search_path()
    config.register_resolvers()
    with initialize_config_dir(config_dir=str(config.config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    for key, allowed in SUPPORTED_TRAINER.items():
        if cfg.trainer.get(key) not in allowed:
            raise SystemExit(f"plain_loop: trainer.{key}={cfg.trainer.get(key)} is not implemented here")
    if cfg.get("ckpt_path") is not None or cfg.get("compile"):
        raise SystemExit("plain_loop: ckpt_path and compile are not implemented here")
    return cfg


def limited(loader: Iterable[Any], limit: int | float | None) -> Iterator[Any]:
    """The first ``limit`` batches (an int) of ``loader``, or all of them."""
    if limit is None or limit == 1.0:
        return iter(loader)
    if not isinstance(limit, int):
        raise SystemExit(f"plain_loop: a fractional batch limit ({limit}) is not implemented here")
    return islice(loader, limit)


def seed_all(seed: int) -> None:
    """What ``pl.seed_everything`` seeds: Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_epoch(model: AttnlabModule, loader: Iterator[Any], optimizer: Any = None, scheduler: Any = None) -> dict:
    """One pass over ``loader``: training when given an optimizer, else evaluation.

    Returns:
        ``loss`` (mean over examples) and ``acc`` (share of argmax hits).
    """
    training = optimizer is not None
    model.train(training)
    loss_sum, hits, seen = 0.0, 0, 0
    with torch.set_grad_enabled(training):
        for batch in loader:
            logits, encoded = model(batch)
            loss = model.head.loss(logits, encoded.pad_mask, batch)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            target = batch["target"]
            loss_sum += float(loss.detach()) * len(target)
            hits += int((logits.detach().argmax(-1) == target).sum())
            seen += len(target)
    return {"loss": loss_sum / seen, "acc": hits / seen}


def save(path: Path, model: AttnlabModule, optimizer: Any, scheduler: Any, epoch: int) -> None:
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    torch.save(state, path)


def train(cfg: DictConfig, out: Path) -> dict[str, float]:
    """Trains, validates every epoch, keeps the best weights, tests them; the final metrics."""
    threads.configure()
    if cfg.get("seed") is not None:
        seed_all(cfg.seed)
    datamodule, info = build_datamodule(cfg, "fit")
    with config.data_info(info):
        model = build_model(cfg)
    if not isinstance(model.head, SequenceHead):
        raise SystemExit("plain_loop: only head=sequence is implemented here (accuracy by argmax)")
    trainer = cfg.trainer
    train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
    epochs = int(trainer.max_epochs)
    steps_per_epoch = len(train_loader) if trainer.limit_train_batches is None else trainer.limit_train_batches
    optimizer = model.optimizer_factory(param_groups(model))  # no weight decay on norms, biases, tables
    scheduler = None
    if model.scheduler_factory is not None:
        scheduler = model.scheduler_factory(optimizer, total_steps=epochs * steps_per_epoch)

    checkpoints = out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    best_acc, history = -1.0, []
    fit_start = time.process_time()
    for epoch in range(epochs):
        _set_sampler_epoch(train_loader, epoch)  # the data order is a function of seed and epoch, as in a run
        fit = run_epoch(model, limited(train_loader, trainer.limit_train_batches), optimizer, scheduler)
        with torch.inference_mode():
            val = run_epoch(model, limited(val_loader, trainer.limit_val_batches))
        history.append({**{f"train/{k}": v for k, v in fit.items()}, **{f"val/{k}": v for k, v in val.items()}})
        if val["acc"] > best_acc:  # as ModelCheckpoint(mode=max): strictly better
            best_acc = val["acc"]
            save(checkpoints / "best.ckpt", model, optimizer, scheduler, epoch)
        save(checkpoints / "last.ckpt", model, optimizer, scheduler, epoch)
        print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items()), flush=True)

    metrics = dict(history[-1])
    metrics["val/acc_best"] = best_acc
    test_start = time.process_time()
    print(f"CPU seconds: {test_start - fit_start:.2f} training and validating", flush=True)
    if cfg.get("test", True):
        model.load_state_dict(torch.load(checkpoints / "best.ckpt", weights_only=True)["model"])
        datamodule.setup("test")
        with torch.inference_mode():
            test = run_epoch(model, limited(datamodule.test_dataloader(), trainer.limit_test_batches))
        metrics.update({f"test/{k}": v for k, v in test.items()})
        metrics.update(baselines.report(datamodule))  # every attnlab run reports its test split's baselines
        print(f"CPU seconds: {time.process_time() - test_start:.2f} testing", flush=True)
    (out / "metrics.json").write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the run folder (checkpoints, metrics.json)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as given to attnlab")
    args = parser.parse_args()
    start = time.perf_counter()
    cfg = compose_config(args.overrides, args.out)
    metrics = train(cfg, args.out)
    print(f"metrics: {json.dumps(metrics)} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
