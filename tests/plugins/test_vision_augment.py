"""Image augmentation (attnlab_vision.augment) against hand-made references, and through the DataModule:
labels stay with their images, MixUp/CutMix soft targets reach the loss while metrics count hard
labels, nothing happens at evaluation, and the same seed gives the same augmented batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning_fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import Dataset

from attnlab.data import DataModule, LoadContext, SourceData, Split
from attnlab.errors import ConfigError
from attnlab_vision import ImageAugment, MixCut
from attnlab_vision.data import collate_images, normalise
from helpers import same_batches

CLASSES = 10


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` moved down by ``dy`` and right by ``dx`` pixels, zeros where nothing moved in (naive)."""
    out = torch.zeros_like(image)
    _, h, w = image.shape
    for y in range(h):
        for x in range(w):
            if 0 <= y - dy < h and 0 <= x - dx < w:
                out[:, y, x] = image[:, y - dy, x - dx]
    return out


def test_pad_and_crop_is_a_shift_of_at_most_the_padding():
    image = torch.rand(3, 16, 16)
    augment = ImageAugment(crop="pad", padding=0.125, erasing=0.0)  # 2 px at 16
    shifts = set()
    for seed in range(30):
        torch.manual_seed(seed)
        out = augment(image)
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(out, shifted(image, dy, dx))]
        assert len(found) == 1, f"seed {seed}: not a shift of at most 2 px"
        shifts.add(found[0])
    assert len(shifts) > 5  # the shift is random


def test_no_flip_unless_asked_and_a_flip_is_a_mirror():
    image = torch.rand(1, 8, 8)
    plain = ImageAugment(crop="none", flip=False)
    flips = ImageAugment(crop="none", flip=True)
    outputs = []
    for seed in range(20):
        torch.manual_seed(seed)
        assert torch.equal(plain(image), image)
        torch.manual_seed(seed)
        outputs.append(flips(image))
    assert all(torch.equal(o, image) or torch.equal(o, image.flip(-1)) for o in outputs)
    assert any(torch.equal(o, image.flip(-1)) for o in outputs) and any(torch.equal(o, image) for o in outputs)


def test_erasing_blacks_out_one_rectangle_and_keeps_the_rest():
    image = torch.rand(3, 32, 32) * 0.9 + 0.1  # no black pixel of its own
    torch.manual_seed(0)
    out = ImageAugment(crop="none", erasing=1.0)(image)
    erased = (out == 0).all(0)  # (H, W)
    rows, cols = erased.any(1).nonzero().flatten(), erased.any(0).nonzero().flatten()
    box = erased[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert box.all() and erased.sum() == box.numel()  # one filled rectangle
    assert 0.02 <= box.numel() / (32 * 32) <= 0.33
    assert torch.equal(out[:, ~erased], image[:, ~erased])


@pytest.mark.parametrize("auto", ["trivial", "rand"])
def test_automatic_policies_keep_shape_and_range_and_follow_the_seed(auto):
    images = torch.rand(5, 3, 16, 16)
    augment = ImageAugment(crop="resized", flip=True, auto=auto, erasing=0.5)

    def run(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [augment(image) for image in images]

    first, again, other = run(1), run(1), run(2)
    assert all(o.shape == (3, 16, 16) and o.dtype == torch.float32 and 0 <= o.min() <= o.max() <= 1 for o in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_an_image_augmentation_refuses_what_is_no_image():
    with pytest.raises(ConfigError, match="choose augment=none"):
        ImageAugment()(torch.arange(30))
    with pytest.raises(ConfigError, match="choose augment=none"):
        MixCut(num_classes=3, mixup=0.2)({"inputs": torch.zeros(4, 100), "target": torch.zeros(4, dtype=torch.long)})
    with pytest.raises(ConfigError, match="augment.example.auto='auto' is unknown"):
        ImageAugment(auto="auto")


# --- through the DataModule ------------------------------------------------------------


def value_of(label: int) -> float:
    """Each class's images are one grey level in [0, 1], so an image says its label."""
    return (label + 1) / (CLASSES + 1)


class Flat(Dataset):
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": torch.full((1, 8, 8), value_of(int(self.labels[i]))), "target": int(self.labels[i])}


@dataclass(frozen=True)
class Greys:
    """40 training, 20 validation and 20 test images, each a flat grey that encodes its label."""

    def load(self, context: LoadContext) -> SourceData:
        def split(n: int, offset: int) -> Split:
            labels = (np.arange(n) * 7 + offset) % CLASSES
            return Split(Flat(labels), labels=labels)

        names = [str(k) for k in range(CLASSES)]
        return SourceData(split(40, 0), split(20, 3), split(20, 5), "sequence", names)

    def collate(self, examples: Sequence[dict]) -> dict:
        return collate_images(examples)


def datamodule(seed: int = 0, example=None, batch=None) -> DataModule:
    dm = DataModule(Greys(), batch_size=8, seed=seed)
    dm.setup()
    dm.set_transforms(example, batch)
    return dm


def epoch(dm: DataModule, number: int = 0) -> list[dict]:
    loader = dm.train_dataloader()
    _set_sampler_epoch(loader, number)
    return list(loader)


GREYS = normalise(torch.tensor([value_of(k) for k in range(CLASSES)]))  # (C,) each class's grey in a batch
BLACK = normalise(torch.tensor(0.0))


def test_shifted_and_erased_images_keep_their_labels():
    augment = ImageAugment(crop="pad", padding=0.25, erasing=1.0)
    batches = epoch(datamodule(example=augment))
    changed = 0
    for batch in batches:
        for image, label in zip(batch["inputs"], batch["target"]):
            kept = image[image != BLACK]  # what the shift and the eraser left of the image
            assert kept.numel() > 0 and torch.allclose(kept, GREYS[label].expand_as(kept))
            changed += int((image == BLACK).any())
    assert changed == 40  # erasing=1: every image lost a rectangle


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.4, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixed_batches_carry_soft_targets_that_match_their_images_and_hard_targets(mixup, cutmix):
    plain, mixed = epoch(datamodule()), epoch(datamodule(batch=MixCut(CLASSES, mixup=mixup, cutmix=cutmix)))
    for before, after in zip(plain, mixed):
        assert torch.equal(after["target"], before["target"])  # metrics keep each example's own label
        soft = after["soft_target"]
        assert soft.shape == (len(before["target"]), CLASSES)
        torch.testing.assert_close(soft.sum(1), torch.ones(len(soft)))
        # an image mixed from two greys averages to the mixture its soft target says
        torch.testing.assert_close(after["inputs"].mean((1, 2, 3)), soft @ GREYS, atol=1e-5, rtol=0)
        # it is mixed with its neighbour in the batch: its own label and the previous one's
        own, previous = before["target"], before["target"].roll(1)
        assert torch.all(soft[torch.arange(len(soft)), own] + soft[torch.arange(len(soft)), previous] >= 1 - 1e-6)


def test_prob_mixes_only_that_share_of_batches_and_zero_alphas_change_nothing():
    mix = MixCut(CLASSES, mixup=0.4, prob=0.5)
    mixed = [mix({"inputs": torch.rand(4, 1, 8, 8), "target": torch.arange(4)}) for _ in range(200)]
    share = sum("soft_target" in b for b in mixed) / 200
    assert 0.35 < share < 0.65
    batch = {"inputs": torch.rand(4, 1, 8, 8), "target": torch.arange(4)}
    assert MixCut(CLASSES)(batch) is batch


def test_evaluation_sees_plain_images_in_order():
    dm = datamodule(example=ImageAugment(erasing=1.0, auto="trivial"), batch=MixCut(CLASSES, mixup=1.0, cutmix=1.0))
    for name, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        split = dm.split(name)
        expected = collate_images([split.examples[i] for i in range(len(split))])
        batches = list(loader)
        assert all("soft_target" not in b for b in batches)
        assert torch.equal(torch.cat([b["inputs"] for b in batches]), expected["inputs"])
        assert torch.equal(torch.cat([b["target"] for b in batches]), expected["target"])


def test_the_same_seed_gives_the_same_augmented_batches():
    def run(seed: int) -> list[dict]:
        example = ImageAugment(crop="resized", auto="trivial", erasing=0.5)
        return epoch(datamodule(seed, example, MixCut(CLASSES, mixup=0.8, cutmix=1.0)), number=1)

    first = run(3)
    torch.manual_seed(999)  # whatever the global RNG did in between
    assert same_batches(first, run(3))
    assert not same_batches(first, run(4))


def test_soft_targets_reach_the_loss_and_metrics_count_hard_labels(make_config):
    """One training step of the real model on a mixed batch: the loss is the cross-entropy against
    soft_target, the accuracy counts predictions against the hard target."""
    from attnlab.build import build_datamodule, build_model
    from attnlab.config import data_info

    cfg = make_config("data.source.image_size=16", "frontend.patch_size=8", "backbone.dim=16", "backbone.heads=2")
    dm, info = build_datamodule(cfg)
    dm.set_transforms(None, MixCut(10, mixup=0.8))
    with data_info(info):
        model = build_model(cfg)
    model.eval()  # no dropout: the step's forward equals the reference forward
    batch = next(iter(dm.train_dataloader()))
    assert "soft_target" in batch and not torch.equal(batch["soft_target"].argmax(1), batch["target"])
    with torch.no_grad():
        logits, _ = model(batch)
        loss = model._step(batch, "train")
    expected = -(batch["soft_target"] * F.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    assert not torch.isclose(loss, F.cross_entropy(logits, batch["target"]))
    accuracy = (logits.argmax(1) == batch["target"]).float().mean()
    torch.testing.assert_close(model.train_metrics["acc"].compute(), accuracy)
