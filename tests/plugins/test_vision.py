"""Vision plugin: patch embedding against a naive reference, datasets and splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.errors import ConfigError, DataError
from attnlab_vision import ImageDataModule, PatchEmbed


def test_patch_embedding_is_a_linear_map_of_flattened_patches():
    torch.manual_seed(0)
    embed = PatchEmbed(in_channels=3, image_size=32, dim=8, patch_size=16)
    images = torch.randn(2, 3, 32, 32)
    tokens = embed({"inputs": images})
    w = embed.proj.weight.reshape(8, -1)  # (D, C*16*16)
    expected = torch.empty(2, 4, 8)
    for b in range(2):
        for i, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            patch = images[b, :, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16].reshape(-1)
            expected[b, i] = w @ patch + embed.proj.bias
    torch.testing.assert_close(tokens.x, expected, atol=1e-4, rtol=1e-4)
    assert tokens.positions.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert tokens.pad_mask.dtype == torch.bool and tokens.pad_mask.all()


def test_image_size_must_be_divisible_by_patch_size():
    with pytest.raises(ConfigError, match="data.image_size=100 is not divisible by frontend.patch_size=16"):
        PatchEmbed(in_channels=1, image_size=100, dim=8)


def digits(split_seed: int = 0) -> ImageDataModule:
    dm = ImageDataModule("digits", image_size=32, split_seed=split_seed)
    dm.setup()
    return dm


def split_indices(dm: ImageDataModule) -> list[set[int]]:
    return [set(s.indices) for s in (dm.splits.train, dm.splits.val, dm.splits.test)]


def test_digits_splits_are_disjoint_complete_stratified_and_fixed_by_split_seed():
    dm = digits()
    train, val, test = split_indices(dm)
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == 1797
    assert abs(len(test) - 0.2 * 1797) <= 1 and abs(len(val) - 0.1 * 1797) <= 1
    labels = [int(dm.splits.test[i]["target"]) for i in range(len(dm.splits.test))]
    assert set(np.bincount(labels, minlength=10)) - set(range(30, 45)) == set()  # ~36 of each digit
    torch.manual_seed(123)  # the training seed does not move the splits
    assert split_indices(digits()) == [train, val, test]
    assert split_indices(digits(split_seed=1)) != [train, val, test]


def test_digits_batches_are_normalised_images_at_image_size():
    dm = digits()
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (64, 1, 32, 32) and batch["target"].dtype == torch.long
    assert batch["inputs"].min() >= -1.0 and batch["inputs"].max() <= 1.0
    assert dm.data_info() == {"num_classes": 10, "in_channels": 1, "image_size": 32}


def make_folder(root, classes=("cat", "dog"), per_class=10) -> None:
    rng = np.random.default_rng(0)
    for label in classes:
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")


def test_imagefolder_reads_one_folder_per_class(tmp_path):
    make_folder(tmp_path)
    dm = ImageDataModule(
        "imagefolder", image_size=16, root=str(tmp_path), batch_size=4, val_fraction=0.2, test_fraction=0.2
    )
    dm.setup()
    assert dm.data_info() == {"num_classes": 2, "in_channels": 3, "image_size": 16}
    assert [len(dm.splits.train), len(dm.splits.val), len(dm.splits.test)] == [12, 4, 4]
    batch = next(iter(dm.test_dataloader()))
    assert batch["inputs"].shape == (4, 3, 16, 16)


def test_imagefolder_uses_given_train_and_test_folders(tmp_path):
    make_folder(tmp_path / "train")
    make_folder(tmp_path / "test", per_class=3)
    dm = ImageDataModule("imagefolder", image_size=16, root=str(tmp_path), val_fraction=0.2)
    dm.setup()
    assert [len(dm.splits.train), len(dm.splits.val), len(dm.splits.test)] == [16, 4, 6]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(dataset="cifar10", root="/no/such/dir"), DataError, "data.root=/no/such/dir does not exist"),
        (dict(dataset="imagefolder"), ConfigError, "data.root is not set"),
        (dict(dataset="mnist"), ConfigError, "unknown image dataset 'mnist'"),
    ],
)
def test_missing_or_unknown_data_fails_clearly(kwargs, error, message):
    with pytest.raises(error, match=message):
        ImageDataModule(image_size=32, **kwargs).setup()
