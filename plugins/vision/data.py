"""Image datasets as a LightningDataModule: digits (embedded), CIFAR-10, image folders.

Images become normalised float tensors ``(C, S, S)`` at ``image_size`` S; a batch is
``{"inputs": (B, C, S, S), "target": (B,)}``. Train/val/test splits are fixed by
``split_seed`` (stratified), independent of the training seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from annotated_types import Ge, Interval
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2

from attnlab.errors import ConfigError, DataError
from attnlab.splits import stratified_split


@dataclass
class ImageSplits:
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    channels: int


class TensorImages(Dataset):
    """Images already in memory, ``(N, C, S, S)`` float, with integer labels."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"inputs": self.images[i], "target": self.labels[i]}


class TransformedImages(Dataset):
    """A torchvision dataset of ``(PIL image, label)`` pairs, transformed on access."""

    def __init__(self, base: Dataset, transform: Callable[[Any], Tensor]) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, label = self.base[i]
        return {"inputs": self.transform(image), "target": torch.tensor(label)}


def _transform(image_size: int, channels: int) -> v2.Compose:
    steps: list[Any] = [v2.ToImage()]
    if channels == 1:
        steps.append(v2.Grayscale())
    steps += [
        v2.Resize((image_size, image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.5] * channels, [0.5] * channels),
    ]
    return v2.Compose(steps)


def load_digits(image_size: int, val_fraction: float, test_fraction: float, split_seed: int, **_: Any) -> ImageSplits:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), resized to ``image_size``."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    pixels = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    images = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = (images - 0.5) / 0.5  # (N, 1, S, S) in [-1, 1]
    labels = torch.tensor(bunch.target, dtype=torch.long)
    train, val, test = stratified_split(bunch.target, [val_fraction, test_fraction], split_seed)
    whole = TensorImages(images, labels)
    return ImageSplits(Subset(whole, train), Subset(whole, val), Subset(whole, test), num_classes=10, channels=1)


def _require_root(root: str | None, fix: str) -> Path:
    if root is None:
        raise ConfigError(f"data.root is not set; {fix}")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"data.root={root} does not exist; {fix}")
    return path


def load_cifar10(
    image_size: int, val_fraction: float, split_seed: int, root: str | None, download: bool, **_: Any
) -> ImageSplits:
    """torchvision's CIFAR-10: the official test set, validation split off the training set."""
    if not download:
        _require_root(root, "point data.root at a CIFAR-10 folder or set data.download=true")
    try:
        train_all = datasets.CIFAR10(str(root), train=True, download=download)
        test = datasets.CIFAR10(str(root), train=False, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataError(f"data.root={root} holds no CIFAR-10 data ({exc}); set data.download=true") from exc
    transform = _transform(image_size, 3)
    train, val = stratified_split(train_all.targets, [val_fraction], split_seed)
    return ImageSplits(
        TransformedImages(Subset(train_all, train.tolist()), transform),
        TransformedImages(Subset(train_all, val.tolist()), transform),
        TransformedImages(test, transform),
        num_classes=10,
        channels=3,
    )


def load_imagefolder(
    image_size: int, val_fraction: float, test_fraction: float, split_seed: int, root: str | None, **_: Any
) -> ImageSplits:
    """One sub-folder per class; ``train/``, ``val/``, ``test/`` sub-folders are used when present."""
    base = _require_root(root, "point data.root at a folder with one sub-folder per class")
    transform = _transform(image_size, 3)
    top = base / "train" if (base / "train").is_dir() else base
    try:
        pool = datasets.ImageFolder(str(top))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"data.root={root}: {exc}") from exc

    def folder(name: str) -> Dataset | None:
        path = base / name
        if top is base or not path.is_dir():
            return None
        found = datasets.ImageFolder(str(path))
        if found.class_to_idx != pool.class_to_idx:
            raise DataError(f"{path} has classes {sorted(found.class_to_idx)}, train has {sorted(pool.class_to_idx)}")
        return found

    val, test = folder("val"), folder("test")
    fractions = [f for f, given in ((val_fraction, val), (test_fraction, test)) if given is None]
    parts = stratified_split(pool.targets, fractions, split_seed) if fractions else [np.arange(len(pool))]
    pieces = iter(parts[1:])
    train = Subset(pool, parts[0].tolist())
    val = val if val is not None else Subset(pool, next(pieces).tolist())
    test = test if test is not None else Subset(pool, next(pieces).tolist())
    return ImageSplits(
        TransformedImages(train, transform),
        TransformedImages(val, transform),
        TransformedImages(test, transform),
        num_classes=len(pool.classes),
        channels=3,
    )


DATASETS: dict[str, Callable[..., ImageSplits]] = {
    "digits": load_digits,
    "cifar10": load_cifar10,
    "imagefolder": load_imagefolder,
}


class ImageDataModule(pl.LightningDataModule):
    """Image classification data for the vision and CNN plugins.

    Args:
        dataset: one of ``digits``, ``cifar10``, ``imagefolder``.
        image_size: images are resized to ``image_size x image_size``.
        batch_size: examples per batch.
        num_workers: DataLoader worker processes.
        val_fraction: share of the training pool held out for validation.
        test_fraction: share held out for testing when the dataset has no test split.
        split_seed: fixes the splits, independently of the training seed.
        root: dataset folder (``cifar10``, ``imagefolder``).
        download: let torchvision download the dataset into ``root`` (``cifar10``).
    """

    def __init__(
        self,
        dataset: str,
        image_size: Annotated[int, Ge(1)],
        batch_size: Annotated[int, Ge(1)] = 64,
        num_workers: Annotated[int, Ge(0)] = 0,
        val_fraction: Annotated[float, Interval(ge=0, lt=1)] = 0.1,
        test_fraction: Annotated[float, Interval(ge=0, lt=1)] = 0.2,
        split_seed: Annotated[int, Ge(0)] = 0,
        root: str | None = None,
        download: bool = False,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ConfigError(f"unknown image dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
        if image_size < 1:
            raise ConfigError(f"data.image_size={image_size} must be positive")
        self.dataset = dataset
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.options = dict(
            val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed, root=root, download=download
        )
        self.splits: ImageSplits | None = None

    def prepare_data(self) -> None:
        if self.dataset == "cifar10" and self.options["download"]:
            for train in (True, False):
                datasets.CIFAR10(str(self.options["root"]), train=train, download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            # Downloading is prepare_data's job (once per machine, not once per process).
            options = {**self.options, "download": False}
            self.splits = DATASETS[self.dataset](image_size=self.image_size, **options)

    def _ready(self) -> ImageSplits:
        if self.splits is None:
            self.setup()
        assert self.splits is not None
        return self.splits

    def data_info(self) -> dict[str, Any]:
        """Values the model takes from the data: ``num_classes``, ``in_channels``, ``image_size``."""
        splits = self._ready()
        return {"num_classes": splits.num_classes, "in_channels": splits.channels, "image_size": self.image_size}

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._ready().train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._ready().val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._ready().test, shuffle=False)
