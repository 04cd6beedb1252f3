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


def test_epoch_metrics_cover_every_batch_and_lr_reaches_the_logged_steps(tmp_path):
    """Metrics are logged once per epoch and the lr only at logging steps (for speed): the epoch
    accuracies still count every example, the sanity check's batches none, and every step that
    reaches the logger carries the lr."""
    import csv

    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    loader = functools.partial(torch.utils.data.DataLoader, batch_size=4)
    train, val = loader(_Images(20, seed=1)), loader(_Images(12, seed=2))
    module = tiny_module(False)
    train_hits = []
    for_metrics = module.head.for_metrics

    def record(logits, pad_mask, batch):  # the training batches' predictions, as the metrics see them
        if module.training:
            train_hits.append(((logits.argmax(-1) == batch["target"]).sum().item(), len(batch["target"])))
        return for_metrics(logits, pad_mask, batch)

    module.head.for_metrics = record
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

    last_epoch = train_hits[-5:]  # 20 examples in batches of 4
    assert trainer.callback_metrics["train/acc"].item() == pytest.approx(sum(h for h, _ in last_epoch) / 20)
    hits, total = _hits(module, val)  # the weights of the last validation
    assert trainer.callback_metrics["val/acc"].item() == pytest.approx(hits / total)
    (result,) = trainer.test(module, loader(_Images(8, seed=3)), verbose=False)
    hits, total = _hits(module, loader(_Images(8, seed=3)))
    assert result["test/acc"] == pytest.approx(hits / total)

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    logged_steps = {int(r["step"]) for r in rows if r.get("train/loss_step")}
    assert logged_steps == {1, 3, 5, 7, 9}  # Lightning logs step s when (s + 1) % log_every_n_steps == 0
    lrs = {int(r["step"]): float(r["train/lr"]) for r in rows if r.get("train/lr")}
    assert lrs == pytest.approx(dict.fromkeys(logged_steps, 1e-3))
