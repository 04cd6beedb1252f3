"""EMA of the weights (validated, in best.ckpt, tested in-run and by attnlab-eval) and early stopping."""

from __future__ import annotations

import csv
import json

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping

from attnlab.build import build_callbacks as build_all
from attnlab.callbacks import EMA
from attnlab.config import data_info
from attnlab.errors import ConfigError, find_user_error
from attnlab.evaluate import evaluate
from attnlab.train import train
from conftest import FAST


class WeightRecorder(pl.Callback):
    """Records the module's parameters after every optimizer step and at the first batch of
    each validation and test epoch (after every epoch-start hook, so after EMA's swap)."""

    runs: list[WeightRecorder] = []

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.val: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.test: list[dict[str, torch.Tensor]] = []
        WeightRecorder.runs.append(self)

    @staticmethod
    def params(module: pl.LightningModule) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in module.named_parameters()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(self.params(pl_module))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self.val.append((trainer.global_step, self.params(pl_module)))

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:
            self.test.append(self.params(pl_module))


def ema_by_hand(steps: list[dict[str, torch.Tensor]], decay: float) -> list[dict[str, torch.Tensor]]:
    """avg_1 = w_1; avg_k = decay * avg_(k-1) + (1 - decay) * w_k (torch.optim.swa_utils' EMA)."""
    out = [steps[0]]
    for w in steps[1:]:
        out.append({n: decay * out[-1][n] + (1 - decay) * w[n] for n in w})
    return out


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_ema_weights_are_validated_checkpointed_and_tested(make_config, tmp_path):
    WeightRecorder.runs.clear()
    decay = 0.5
    cfg = make_config(
        *FAST,
        "trainer.max_epochs=2",
        f"callbacks.ema.decay={decay}",
        "+callbacks.recorder._target_=test_ema_early_stopping.WeightRecorder",
        "logger=csv",
    )
    train(cfg)
    (rec,) = WeightRecorder.runs
    assert len(rec.steps) == 6
    ema = ema_by_hand(rec.steps, decay)
    assert not torch.allclose(ema[-1]["head.fc.weight"], rec.steps[-1]["head.fc.weight"])  # the test can fail

    assert [step for step, _ in rec.val] == [3, 6]
    for step, weights in rec.val:  # validation sees the average
        assert_same(weights, ema[step - 1])

    run = tmp_path / "run"
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    best_ema = ema[best["global_step"] - 1]
    assert_same({n: best["state_dict"][n] for n in best_ema}, best_ema)  # best.ckpt holds the average
    (tested,) = rec.test
    assert_same(tested, best_ema)  # the in-run test scores the average, not the raw weights

    trained = json.loads((run / "metrics.json").read_text())
    eval_cfg = make_config(f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "logger=csv", name="eval")
    eval_cfg.trainer.limit_test_batches = 2
    eval_cfg.trainer.enable_progress_bar = False
    assert evaluate(eval_cfg)["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)


def build_callbacks(cfg):
    """As train builds them: inside the data's scope, where ${from_data:class_names} resolves."""
    with data_info({"num_classes": 3, "class_names": ["a", "b", "c"]}):
        return build_all(cfg)


def test_ema_is_off_by_default_and_on_with_a_decay(make_config):
    assert not any(isinstance(c, EMA) for c in build_callbacks(make_config()))
    (ema,) = [c for c in build_callbacks(make_config("callbacks.ema.decay=0.99")) if isinstance(c, EMA)]
    assert ema.decay == 0.99
    with pytest.raises(Exception) as info:
        build_callbacks(make_config("callbacks.ema.decay=1.5"))
    assert isinstance(find_user_error(info.value), ConfigError) and "decay" in str(find_user_error(info.value))


@pytest.mark.parametrize(
    ("overrides", "monitor", "mode"),
    [
        ([], "val/acc", "max"),
        (["optimized_metric=val/loss", "callbacks.model_checkpoint.mode=min"], "val/loss", "min"),
        (["experiment=speech_ctc"], "val/cer", "min"),
    ],
)
def test_early_stopping_reads_the_objective_and_its_direction(overrides, monitor, mode, make_config):
    assert not any(isinstance(c, EarlyStopping) for c in build_callbacks(make_config(*overrides)))
    callbacks = build_callbacks(make_config(*overrides, "callbacks.early_stopping.patience=3"))
    (stop,) = [c for c in callbacks if isinstance(c, EarlyStopping)]
    assert (stop.monitor, stop.mode, stop.patience) == (monitor, mode, 3)


def test_early_stopping_stops_a_run_that_does_not_improve(make_config, tmp_path):
    # lr 0: val/loss never changes, so with patience 1 the run stops after its second epoch.
    cfg = make_config(
        *FAST,
        "trainer.max_epochs=6",
        "optimizer.lr=0.0",
        "optimized_metric=val/loss",
        "callbacks.model_checkpoint.mode=min",
        "callbacks.early_stopping.patience=1",
        "logger=csv",
    )
    train(cfg)
    (log,) = (tmp_path / "run" / "csv").rglob("metrics.csv")
    rows = list(csv.DictReader(log.open()))
    assert sorted({int(r["epoch"]) for r in rows if r["val/loss"]}) == [0, 1]
