"""Which modality a dataset belongs to: for `attnlab data=<name>` without `modality=`."""

from __future__ import annotations

from attnlab.data.catalog import dataset_modalities, datasets, owner


def test_each_dataset_names_its_modality_first_and_those_that_share_its_sources():
    assert dataset_modalities("listops") == ["text"]
    assert dataset_modalities("spoken_digit_strings") == ["speech"]
    assert dataset_modalities("digits") == ["vision", "cnn"]  # the CNN plugin reads the vision sources
    assert dataset_modalities("imagenet") == [] and owner("imagenet") is None


def test_every_plugin_dataset_is_listed_once_with_its_owner():
    found = datasets()
    assert found["conll"] == "text" and found["audiofolder"] == "speech" and found["cifar10"] == "vision"
    assert set(found) >= {"digits", "cifar10", "imagefolder", "spoken_digits", "listops", "textfiles", "hf"}
