"""Image dataset sources: scikit-learn's digits (embedded), CIFAR-10 and folders of images.

Each source is read by attnlab's :class:`~attnlab.data.DataModule` (``data.source``).
An example's image is a float tensor ``(C, H, W)`` in [0, 1], which is what the training
augmentation (``data.train_transform``, :mod:`attnlab_vision.augment`) expects: torchvision's
TrivialAugment and RandAugment need [0, 1] floats or uint8. The collate then normalises:
a batch is ``{"inputs": (B, C, S, S) in [-1, 1], "target": (B,)}`` at ``image_size`` S. Splits
are fixed by ``split_seed`` (stratified), independent of the training seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Lt
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, Subset

from attnlab.data import LoadContext, SourceData, Split
from attnlab.data.folders import folder_splits, require_root
from attnlab.data.splits import stratified_split
from attnlab.errors import ConfigError, DataError
from attnlab.types import Batch, Task

if TYPE_CHECKING:  # torchvision's import pulls its model zoo and torch._dynamo (~2 s): loaded where used
    from torchvision.transforms import v2

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
Fraction = Annotated[float, Gt(0), Lt(1)]
Size = Annotated[int, Ge(1)]


def image_transform(image_size: int, channels: int) -> v2.Compose:
    """PIL image → float ``(channels, S, S)`` in [0, 1] (normalised later, in :func:`collate_images`)."""
    from torchvision.transforms import v2

    steps: list[Any] = [v2.ToImage()]
    if channels == 1:
        steps.append(v2.Grayscale())
    steps += [
        v2.Resize((image_size, image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
    ]
    return v2.Compose(steps)


def normalise(images: Tensor) -> Tensor:
    """Images in [0, 1] to [-1, 1] (mean and standard deviation 0.5 per channel)."""
    return (images - 0.5) / 0.5


def collate_images(examples: Sequence[dict[str, Any]]) -> Batch:
    """``inputs`` ``(B, C, S, S)`` in [-1, 1] and ``target`` ``(B,)``: images of one size need no padding.

    Normalising here, after the per-example training transforms, lets them work on [0, 1]
    images; batch transforms (MixUp, CutMix) are linear and see the normalised batch.
    """
    return {
        "inputs": normalise(torch.stack([ex["inputs"] for ex in examples]).float()),
        "target": torch.as_tensor([int(ex["target"]) for ex in examples], dtype=torch.long),
    }


def pooled_pixels(image: Tensor, side: int) -> np.ndarray:
    """An image ``(C, H, W)`` average-pooled to at most ``side x side``, flattened: ``(C * side * side,)``."""
    size = (min(side, image.shape[-2]), min(side, image.shape[-1]))
    return F.adaptive_avg_pool2d(image[None].float(), size).flatten().numpy()


def _check_size(image_size: int) -> None:
    if image_size < 1:
        raise ConfigError(f"data.source.image_size={image_size} must be >= 1")


class TensorImages(Dataset):
    """Images already in memory, ``(N, C, H, W)`` float in [0, 1], with integer labels."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"inputs": self.images[i], "target": int(self.labels[i])}


class TransformedImages(Dataset):
    """A dataset of ``(PIL image, label)`` pairs, transformed on access."""

    def __init__(self, base: Dataset, transform: Callable[[Any], Tensor]) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, label = self.base[i]
        return {"inputs": self.transform(image), "target": int(label)}


class ImageFiles(Dataset):
    """Image files decoded on access (RGB), with a class id each."""

    def __init__(self, files: list[Path], labels: np.ndarray, transform: Callable[[Any], Tensor]) -> None:
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            with Image.open(self.files[i]) as image:
                rgb = image.convert("RGB")
        except Exception as exc:  # changed since the set-up scan
            raise DataError(f"cannot read image file {self.files[i]}: {exc}") from exc
        return {"inputs": self.transform(rgb), "target": int(self.labels[i])}


def decode_image(path: Path) -> None:
    """Decode every pixel of ``path`` (a header check misses a truncated file)."""
    with Image.open(path) as image:
        image.load()


def _values(channels: int, image_size: int) -> dict[str, Any]:
    return {"in_channels": channels, "image_size": image_size}


@dataclass(frozen=True)
class Digits:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), resized.

    Examples are the 8x8 images (what training augmentation shifts, crops and erases: a
    pixel there is a pen stroke, and a transform costs a fraction of what it costs at 128 px);
    the collate upsamples the batch to ``image_size``.

    Args:
        image_size: images are upsampled to ``image_size x image_size`` (bilinear) in each batch.
        val_fraction, test_fraction: shares held out, stratified by digit.
        split_seed: fixes the splits, independently of the training seed.
    """

    predicts: ClassVar[Task] = "sequence"
    image_size: Size = 128
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        _check_size(self.image_size)

    def load(self, context: LoadContext) -> SourceData:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
        labels = np.asarray(bunch.target, dtype=np.int64)
        whole = Split(TensorImages(pixels, torch.from_numpy(labels)), labels=labels, origin="sklearn digits")
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        names = [str(d) for d in range(10)]
        train, val, test = (whole.subset(p) for p in stratified_split(labels, fractions, self.split_seed, names))
        return SourceData(train, val, test, "sequence", names, _values(1, self.image_size))

    def collate(self, examples: Sequence[dict[str, Any]]) -> Batch:
        """``inputs`` ``(B, 1, S, S)`` in [-1, 1], upsampled from 8x8, and ``target`` ``(B,)``."""
        batch = collate_images(examples)
        size = (self.image_size,) * 2
        batch["inputs"] = F.interpolate(batch["inputs"], size=size, mode="bilinear", align_corners=False)
        return batch

    def raw_features(self, example: dict[str, Any]) -> np.ndarray:
        """The 8x8 pixels (the images' own resolution): 64 features."""
        return pooled_pixels(example["inputs"], 8)


@dataclass(frozen=True)
class Cifar10:
    """torchvision's CIFAR-10: its official test set, validation cut from its training set.

    Args:
        root: the folder holding ``cifar-10-batches-py`` (or where to download it).
        image_size: images are resized to ``image_size x image_size`` (native: 32).
        val_fraction: share of the training set held out for validation, stratified.
        split_seed: fixes that split.
        download: let torchvision download the dataset into ``root`` (170 MB).
    """

    predicts: ClassVar[Task] = "sequence"
    root: str | None = None
    image_size: Size = 32
    val_fraction: Fraction = 0.1
    split_seed: int = 0
    download: bool = False

    def __post_init__(self) -> None:
        _check_size(self.image_size)

    def prepare(self) -> None:
        if self.download:
            from torchvision import datasets

            if self.root is None:
                raise ConfigError("data.source.root is not set; give the folder to download CIFAR-10 into")
            for train in (True, False):
                datasets.CIFAR10(str(Path(self.root).expanduser()), train=train, download=True)

    def load(self, context: LoadContext) -> SourceData:
        from torchvision import datasets

        fix = "point data.source.root at a CIFAR-10 folder or set data.source.download=true"
        root = str(require_root(self.root, "data.source.root", fix))
        try:
            train_all = datasets.CIFAR10(root, train=True, download=False)
            test = datasets.CIFAR10(root, train=False, download=False)
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
            raise DataError(f"data.source.root={self.root} holds no CIFAR-10 data ({exc}); {fix}") from exc
        transform = image_transform(self.image_size, 3)
        labels = np.asarray(train_all.targets, dtype=np.int64)
        names = list(train_all.classes)
        train, val = stratified_split(labels, {"val_fraction": self.val_fraction}, self.split_seed, names)

        def part(base: Dataset, index: np.ndarray | None, targets: np.ndarray) -> Split:
            chosen = base if index is None else Subset(base, index.tolist())
            picked = targets if index is None else targets[index]
            return Split(TransformedImages(chosen, transform), labels=picked, origin=f"CIFAR-10 in {root}")

        test_labels = np.asarray(test.targets, dtype=np.int64)
        return SourceData(
            part(train_all, train, labels),
            part(train_all, val, labels),
            part(test, None, test_labels),
            "sequence",
            names,
            _values(3, self.image_size),
        )

    collate = staticmethod(collate_images)

    def raw_features(self, example: dict[str, Any]) -> np.ndarray:
        """The pixels at up to 32x32: 3,072 features."""
        return pooled_pixels(example["inputs"], 32)


@dataclass(frozen=True)
class ImageFolder:
    """Your own images: one sub-folder per class (its name is the class name).

    ``root/train/``, ``root/val/``, ``root/test/`` folders of class folders are used when
    present; splits without a folder are cut from the training pool. Files that cannot be
    decoded are found at set-up and skipped or refused (``data.bad_files``).

    Args:
        root: the folder of class folders.
        image_size: images are resized to ``image_size x image_size`` (RGB).
        val_fraction, test_fraction: shares cut from the training pool, stratified.
        split_seed: fixes those cuts.
    """

    predicts: ClassVar[Task] = "sequence"
    root: str | None = None
    image_size: Size = 128
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        _check_size(self.image_size)

    def load(self, context: LoadContext) -> SourceData:
        fix = "point data.source.root at a folder with one sub-folder of images per class"
        root = require_root(self.root, "data.source.root", fix)
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        names, parts = folder_splits(
            root, IMAGE_SUFFIXES, fractions, self.split_seed, lambda files: context.readable(files, decode_image)
        )
        transform = image_transform(self.image_size, 3)
        splits = [
            Split(ImageFiles(p.files, p.labels, transform), labels=p.labels, files=p.files, origin=p.origin)
            for p in parts.values()
        ]
        return SourceData(*splits, task="sequence", class_names=names, values=_values(3, self.image_size))

    collate = staticmethod(collate_images)

    def check_file(self, path: Path) -> None:
        decode_image(path)

    def raw_features(self, example: dict[str, Any]) -> np.ndarray:
        """The pixels at up to 32x32: 3,072 features."""
        return pooled_pixels(example["inputs"], 32)
