"""Vision plugin: patch embedding against a naive reference, datasets and splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.data import DataModule
from attnlab.errors import ConfigError, DataError
from attnlab_vision import Cifar10, Digits, ImageFolder, PatchEmbed


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
    with pytest.raises(ConfigError, match="data.source.image_size=100 is not divisible by frontend.patch_size=16"):
        PatchEmbed(in_channels=1, image_size=100, dim=8)


def digits(split_seed: int = 0) -> DataModule:
    dm = DataModule(Digits(image_size=32, split_seed=split_seed), batch_size=64, seed=0)
    dm.setup()
    return dm


def split_indices(dm: DataModule) -> list[set[int]]:
    return [set(dm.split(s).examples.indices) for s in ("train", "val", "test")]


def test_digits_splits_are_disjoint_complete_stratified_and_fixed_by_split_seed():
    dm = digits()
    train, val, test = split_indices(dm)
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == 1797
    assert abs(len(test) - 0.2 * 1797) <= 1 and abs(len(val) - 0.1 * 1797) <= 1
    test_split = dm.split("test")
    labels = [int(test_split.examples[i]["target"]) for i in range(len(test_split))]
    assert set(np.bincount(labels, minlength=10)) - set(range(30, 45)) == set()  # ~36 of each digit
    torch.manual_seed(123)  # the training seed does not move the splits
    assert split_indices(digits()) == [train, val, test]
    assert split_indices(digits(split_seed=1)) != [train, val, test]


def test_digits_batches_are_normalised_images_at_image_size():
    dm = digits()
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (64, 1, 32, 32) and batch["target"].dtype == torch.long
    assert batch["inputs"].min() >= -1.0 and batch["inputs"].max() <= 1.0
    names = [str(d) for d in range(10)]
    assert dm.data_info() == {
        "task": "sequence",
        "num_classes": 10,
        "class_names": names,
        "in_channels": 1,
        "image_size": 32,
    }


def make_folder(root, classes=("cat", "dog"), per_class=10) -> None:
    rng = np.random.default_rng(0)
    for label in classes:
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")


def test_imagefolder_reads_one_folder_per_class(tmp_path):
    make_folder(tmp_path)
    source = ImageFolder(root=str(tmp_path), image_size=16, val_fraction=0.2, test_fraction=0.2)
    dm = DataModule(source, batch_size=4, seed=0)
    dm.setup()
    assert dm.data_info() == {
        "task": "sequence",
        "num_classes": 2,
        "class_names": ["cat", "dog"],  # the folder names: the confusion matrix is labelled
        "in_channels": 3,
        "image_size": 16,
    }
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [12, 4, 4]
    batch = next(iter(dm.test_dataloader()))
    assert batch["inputs"].shape == (4, 3, 16, 16)


def test_imagefolder_uses_given_train_and_test_folders(tmp_path):
    make_folder(tmp_path / "train")
    make_folder(tmp_path / "test", per_class=3)
    dm = DataModule(ImageFolder(root=str(tmp_path), image_size=16, val_fraction=0.2), seed=0)
    dm.setup()
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [16, 4, 6]


def test_cifar10_class_names_are_its_own(tmp_path, monkeypatch):
    """A CIFAR-10 folder in torchvision's layout (one tiny batch file per split), read by the source."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    rng = np.random.default_rng(0)
    for file in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [k for k in range(10) for _ in range(3)]
        batch = {"data": rng.integers(0, 255, (30, 3072), dtype=np.uint8), "labels": labels}
        (folder / file).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    import torchvision.datasets.cifar

    # the real files' checksums do not fit these tiny ones
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    dm = DataModule(Cifar10(root=str(tmp_path), val_fraction=0.2), batch_size=8, seed=0)
    dm.setup()
    assert dm.class_names == names
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [120, 30, 30]
    assert next(iter(dm.train_dataloader()))["inputs"].shape == (8, 3, 32, 32)


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        (lambda: Cifar10(root="/no/such/dir"), DataError, "data.source.root=/no/such/dir does not exist"),
        (lambda: ImageFolder(), ConfigError, "data.source.root is not set"),
        (lambda: Digits(image_size=0), ConfigError, "data.source.image_size=0 must be >= 1"),
    ],
)
def test_missing_data_fails_clearly(source, error, message):
    with pytest.raises(error, match=message):
        DataModule(source()).setup()


def test_a_misspelt_source_key_is_refused():
    with pytest.raises(TypeError, match="image_sise"):
        Digits(image_sise=32)  # type: ignore[call-arg]


def test_raw_features_are_the_pixels_at_their_own_resolution():
    dm = digits()
    features, labels = dm.raw_features("test")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    index = dm.split("test").examples.indices
    assert features.shape == (len(index), 64) and np.array_equal(labels, bunch.target[index])
    expected = (bunch.images[index].reshape(len(index), 64) / 16.0 - 0.5) / 0.5  # the 8x8 pixels, as normalised
    assert np.corrcoef(features.ravel(), expected.ravel())[0, 1] > 0.95  # bilinear up, area down: a blur
