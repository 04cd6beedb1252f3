"""Which modality a dataset belongs to: for `attnlab data=<name>` without `modality=`."""

from __future__ import annotations

import pytest

from attnlab.data.catalog import check_pairing, dataset_modalities, datasets, owner
from attnlab.errors import ConfigError
from attnlab_cnn import ConvStem
from attnlab_speech import SpeechFrontend, SpokenDigits
from attnlab_text import ListOps
from attnlab_vision import Digits, PatchEmbed


def test_each_dataset_names_its_modality_first_and_those_that_share_its_sources():
    assert dataset_modalities("listops") == ["text"]
    assert dataset_modalities("spoken_digit_strings") == ["speech"]
    assert dataset_modalities("digits") == ["vision", "cnn"]  # the CNN plugin reads the vision sources
    assert dataset_modalities("imagenet") == [] and owner("imagenet") is None


def test_every_plugin_dataset_is_listed_once_with_its_owner():
    found = datasets()
    assert found["conll"] == "text" and found["audiofolder"] == "speech" and found["cifar10"] == "vision"
    assert set(found) >= {"digits", "cifar10", "imagefolder", "spoken_digits", "listops", "textfiles", "hf"}


def test_a_front_end_and_a_source_of_different_modalities_name_the_modality_to_add():
    check_pairing(ConvStem, Digits)  # the CNN plugin declares the vision sources
    check_pairing(SpeechFrontend, SpokenDigits)
    with pytest.raises(
        ConfigError, match=r"source ListOps is read by modality text, .* PatchEmbed .*add modality=text$"
    ):
        check_pairing(PatchEmbed, ListOps)
    with pytest.raises(ConfigError, match=r"read by modality cnn, vision, .*add modality=vision$"):
        check_pairing(SpeechFrontend, Digits)  # the plugin that ships the source comes first
