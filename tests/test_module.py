"""The LightningModule's parts: torch.compile, the schedule, the CLS/pooling check."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from attnlab.backbone import Encoder
from attnlab.errors import ConfigError
from attnlab.heads import SequenceHead
from attnlab.module import AttnlabModule
from attnlab.optim import warmup_cosine
from attnlab_vision import PatchEmbed


def tiny_module(compile: bool, cls_token: bool = True, pooling: str = "auto") -> AttnlabModule:
    torch.manual_seed(0)
    return AttnlabModule(
        frontend=PatchEmbed(in_channels=1, image_size=32, dim=16, patch_size=8),
        backbone=Encoder(dim=16, depth=1, heads=2, cls_token=cls_token),
        head=SequenceHead(dim=16, num_classes=3, pooling=pooling),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        compile=compile,
    )


def test_compiled_forward_matches_eager():
    batch = {"inputs": torch.randn(2, 1, 32, 32), "target": torch.tensor([0, 2])}
    eager, compiled = tiny_module(False).eval(), tiny_module(True).eval()
    compiled.load_state_dict(eager.state_dict())
    assert compiled._encode is not compiled._encode_eager
    with torch.no_grad():
        torch.testing.assert_close(compiled(batch)[0], eager(batch)[0], atol=1e-5, rtol=1e-5)


def test_attention_maps_come_back_when_asked():
    module = tiny_module(False).eval()
    logits, encoded = module({"inputs": torch.randn(2, 1, 32, 32)}, return_attention=True)
    assert logits.shape == (2, 3) and encoded.attention[0].shape == (2, 2, 17, 17)


def test_cls_pooling_without_cls_token_is_a_config_error():
    with pytest.raises(ConfigError, match="head.pooling=cls needs backbone.cls_token=true"):
        tiny_module(False, cls_token=False, pooling="cls")


def test_warmup_cosine_follows_the_formula():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = warmup_cosine(opt, total_steps=20, warmup_fraction=0.2, min_lr_ratio=0.1)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warm = [(s + 1) / 5 for s in range(4)]  # linear from 1/(w+1) up to the peak
    cosine = [0.1 + 0.9 * (1 + math.cos(math.pi * s / 16)) / 2 for s in range(16)]
    assert seen == pytest.approx(warm + cosine, abs=1e-6)


class _Images(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(n, 1, 32, 32, generator=generator)
        self.target = torch.randint(0, 3, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": self.inputs[i], "target": self.target[i]}


def _hits(module: AttnlabModule, loader) -> tuple[int, int]:
    module.eval()
    with torch.no_grad():
        pairs = [(module(b)[0].argmax(-1) == b["target"]).sum().item() for b in loader]
    return sum(pairs), len(loader.dataset)


def test_epoch_values_cover_every_batch_and_step_values_reach_the_logged_steps(tmp_path):
    """Metrics and the loss's epoch mean are logged once per epoch, the step loss and the lr only
    on logging steps (for speed): the epoch values still count every example (the loss weighted by
    batch size), the sanity check's batches none, and every step that reaches the logger carries
    the step loss and the lr."""
    import csv

    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    loader = functools.partial(torch.utils.data.DataLoader, batch_size=4)
    train, val = loader(_Images(22, seed=1)), loader(_Images(12, seed=2))  # the last training batch has 2
    module = tiny_module(False)
    seen = []  # per training batch: (loss, hits, size), as the module computed them
    loss_fn = module.head.loss

    def record_loss(logits, pad_mask, batch):
        loss = loss_fn(logits, pad_mask, batch)
        if module.training:
            hits = (logits.argmax(-1) == batch["target"]).sum().item()
            seen.append((loss.item(), hits, len(batch["target"])))
        return loss

    module.head.loss = record_loss
    trainer = pl.Trainer(
        max_epochs=2,
        log_every_n_steps=2,
        logger=CSVLogger(tmp_path, name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, train, val)

    epochs = [seen[:6], seen[6:]]
    means = [sum(loss * n for loss, _, n in e) / 22 for e in epochs]
    assert trainer.callback_metrics["train/acc"].item() == pytest.approx(sum(h for _, h, _ in epochs[1]) / 22)
    assert trainer.callback_metrics["train/loss"].item() == pytest.approx(means[1], rel=1e-5)
    hits, total = _hits(module, val)  # the weights of the last validation
    assert trainer.callback_metrics["val/acc"].item() == pytest.approx(hits / total)
    test = loader(_Images(8, seed=3))
    (result,) = trainer.test(module, test, verbose=False)
    hits, total = _hits(module, test)
    assert result["test/acc"] == pytest.approx(hits / total)

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    steps = {int(r["step"]): float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")}
    assert steps == pytest.approx({s: seen[s][0] for s in (1, 3, 5, 7, 9, 11)}, rel=1e-5)  # (s + 1) % 2 == 0
    lrs = {int(r["step"]): float(r["train/lr"]) for r in rows if r.get("train/lr")}
    assert lrs == pytest.approx(dict.fromkeys(steps, 1e-3))
    assert [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")] == pytest.approx(means, rel=1e-5)
