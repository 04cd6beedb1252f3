"""The trivial baselines beside a run's result (attnlab.baselines): equal to scikit-learn fitted here by hand on
the same split, skipped with a reason where they do not apply, sent to the loggers, and flagged where a result
falls below them (the final table, the sweep report)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MaxAbsScaler, StandardScaler
from torch.utils.data import Dataset

from attnlab import baselines, console
from attnlab.data import DataModule, LoadContext, SourceData, Split
from attnlab.data.splits import stratified_split
from attnlab.report import build_report, markdown
from attnlab.train import train
from attnlab.types import IGNORE_INDEX
from attnlab_vision import Digits
from conftest import FAST
from helpers import fake_job, wandb_records

GRID = (0.01, 0.1, 1.0, 10.0)


def by_hand(x: Any, y: np.ndarray, parts: Sequence[np.ndarray], scaler: Any) -> float:
    """Logistic regression fitted on ``parts[0]``, C chosen on ``parts[1]``, scored on ``parts[2]`` (cold starts)."""
    train, val, test = parts
    scaler = scaler.fit(x[train])
    best = max(
        (LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x[train]), y[train]) for c in GRID),
        key=lambda model: model.score(scaler.transform(x[val]), y[val]),  # first best wins, as max keeps it
    )
    return best.score(scaler.transform(x[test]), y[test])


def test_digits_baselines_are_majority_and_logistic_regression_on_the_pixels():
    dm = DataModule(Digits(image_size=16), batch_size=16)
    dm.setup()
    found = baselines.compute(dm)
    bunch = load_digits()
    x, y = bunch.data / 16.0, bunch.target  # (1797, 64) pixels in [0, 1]
    parts = stratified_split(y, {"val_fraction": 0.1, "test_fraction": 0.2}, 0)
    counts = np.bincount(y[parts[0]])
    majority = (y[parts[2]] == counts.argmax()).mean()
    assert found.values["test/baseline/majority_acc"] == pytest.approx(majority)
    assert found.values["test/baseline/linear_acc"] == pytest.approx(by_hand(x, y, parts, StandardScaler()))
    assert found.values["test/baseline/linear_acc"] > 0.9 and found.skipped == {}


# --- sources made here -------------------------------------------------------------------


class Rows(Dataset):
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


@dataclass(frozen=True)
class Bags:
    """Bags of 30 token counts; a class raises the counts of its own three tokens. No raw features."""

    classes: int = 3

    def load(self, context: LoadContext) -> SourceData:
        rng = np.random.default_rng(0)
        labels = np.arange(150) % self.classes
        counts = rng.poisson(1.0, (150, 30))
        for i, label in enumerate(labels):
            counts[i, 3 * label : 3 * label + 3] += rng.poisson(1.0, 3)
        rows = [{"inputs": torch.tensor(c), "target": int(k), "counts": c} for c, k in zip(counts, labels)]

        def split(index: range) -> Split:
            return Split(Rows([rows[i] for i in index]), labels=labels[list(index)])

        names = [str(k) for k in range(self.classes)]
        return SourceData(split(range(90)), split(range(90, 120)), split(range(120, 150)), "sequence", names)

    def collate(self, examples: Sequence[dict]) -> dict:
        return {
            "inputs": torch.stack([e["inputs"] for e in examples]),
            "target": torch.tensor([e["target"] for e in examples]),
        }


@dataclass(frozen=True)
class Counts(Bags):
    """The same bags, offering their counts as sparse raw features (as text's bag of tokens does)."""

    def raw_features(self, example: dict) -> Any:
        return scipy.sparse.csr_matrix(example["counts"].reshape(1, -1).astype(np.float64))


def test_sparse_features_are_scaled_by_their_largest_value_and_fitted_the_same_way():
    source = Counts()
    dm = DataModule(source, batch_size=8)
    dm.setup()
    found = baselines.compute(dm)
    data = source.load(None)  # type: ignore[arg-type]
    x = np.stack(
        [data.train.examples[i]["counts"] for i in range(90)]
        + [part.examples[i]["counts"] for part in (data.val, data.test) for i in range(30)]
    ).astype(np.float64)
    y = np.arange(150) % 3
    parts = (np.arange(90), np.arange(90, 120), np.arange(120, 150))
    assert found.values["test/baseline/linear_acc"] == pytest.approx(by_hand(x, y, parts, MaxAbsScaler()))
    assert found.values["test/baseline/majority_acc"] == pytest.approx(10 / 30)  # 30 each: class 0 by the tie rule


@dataclass(frozen=True)
class Tagged:
    """A token task: each example's targets hold one label per token, padded with IGNORE_INDEX; no raw features."""

    def load(self, context: LoadContext) -> SourceData:
        def split(targets: list[list[int]]) -> Split:
            rows = [{"inputs": torch.zeros(len(t)), "target": torch.tensor(t)} for t in targets]
            return Split(Rows(rows))

        train = split([[0, 1, 1, IGNORE_INDEX], [2, 1, IGNORE_INDEX, IGNORE_INDEX], [1, 0, 0, 0]])  # 1: 4 tokens, 0: 4
        val = split([[1, 2]])
        test = split([[0, 0, 2, IGNORE_INDEX], [1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])
        return SourceData(train, val, test, "token", ["a", "b", "c"])

    def collate(self, examples: Sequence[dict]) -> dict:
        raise AssertionError("the baselines read no batches")


def test_a_token_task_counts_every_labelled_token_and_has_no_linear_baseline():
    dm = DataModule(Tagged())
    dm.setup()
    found = baselines.compute(dm)
    # training tokens: 0 x4, 1 x4, 2 x1 -> the tie goes to class 0; test tokens 0, 0, 2, 1: two of four are 0
    assert found.values == {"test/baseline/majority_acc": 0.5}
    assert "token" in found.skipped["linear"]


def test_a_source_without_raw_features_has_only_the_majority_baseline_and_the_loggers_get_it():
    class Logger:
        def __init__(self) -> None:
            self.logged: list[tuple[dict, int | None]] = []
            self.saved = 0

        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            self.logged.append((dict(metrics), step))

        def save(self) -> None:
            self.saved += 1

    dm = DataModule(Bags(), batch_size=8)
    dm.setup()
    logger = Logger()
    values = baselines.report(dm, [logger], step=7)
    assert values == {"test/baseline/majority_acc": pytest.approx(1 / 3)}
    assert logger.logged == [(values, 7)] and logger.saved == 1


# --- the flag ------------------------------------------------------------------------------


def test_the_final_table_flags_a_result_below_its_baseline(capsys, tmp_path):
    below = {"test/acc": 0.80, "test/loss": 0.5, "test/baseline/linear_acc": 0.89, "test/baseline/majority_acc": 0.1}
    console.print_results("final metrics", below, tmp_path)
    shown = capsys.readouterr().out
    (row,) = [line for line in shown.splitlines() if "test/acc" in line and "baseline/" not in line]
    assert "below linear_acc (0.8900)" in row and "majority" not in row
    console.print_results("final metrics", below | {"test/acc": 0.95}, tmp_path)
    assert "below" not in capsys.readouterr().out


def test_the_sweep_report_flags_jobs_below_their_baseline(tmp_path):
    for i, acc in enumerate([0.80, 0.95]):
        metrics = {"val/acc": acc, "test/acc": acc, "test/baseline/linear_acc": 0.89, "test/baseline/majority_acc": 0.1}
        fake_job(tmp_path / str(i), [f"optimizer.lr={i}"], "completed", metrics)
    report = build_report(tmp_path)
    assert report.baseline_notes() == ["job 0: test/acc 0.8000 is below its baseline test/baseline/linear_acc 0.8900"]
    assert [row["below_baseline"] for row in report.rows()] == ["test/acc < test/baseline/linear_acc", ""]
    text = markdown(report)
    assert "- job 0: test/acc 0.8000 is below its baseline test/baseline/linear_acc 0.8900" in text


def test_a_run_writes_its_baselines_to_metrics_json_and_wandb(make_config, tmp_path):
    """The values the loggers got are W&B's summary (read from the offline run file, not through wandb)."""
    train(make_config(*FAST))
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test/baseline/majority_acc", "test/baseline/linear_acc"} <= set(metrics)
    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    summary = {}
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "summary":
            summary |= {
                item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update
            }
    assert {k: summary[k] for k in metrics if k.startswith("test/baseline/")} == pytest.approx(
        {k: v for k, v in metrics.items() if k.startswith("test/baseline/")}
    )
