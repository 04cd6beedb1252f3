"""The plugin contract, run over every discovered plugin: a new plugin needs no new test."""

from __future__ import annotations

import pytest
import torch

from attnlab import contract, plugins
from attnlab.types import Tokens

NAMES = sorted(plugins.available())


def test_the_built_in_plugins_are_discovered_through_entry_points():
    records = plugins.discover()
    assert {"vision", "cnn"} <= set(records)
    assert all(records[n].ok and records[n].source.startswith("attnlab ") for n in ("vision", "cnn"))


@pytest.mark.parametrize("name", NAMES)
def test_plugin_meets_the_contract(name):
    contract.run_checks(name)


@pytest.mark.parametrize(
    ("tokens", "check", "detail"),
    [
        (Tokens(torch.zeros(2, 3, 8), torch.ones(2, 3)), "pad mask", "expected pad_mask to be bool"),
        (Tokens(torch.zeros(2, 3, 8), torch.ones(2, 4, dtype=torch.bool)), "pad mask", "shape (B, T) = (2, 3)"),
        (
            Tokens(torch.zeros(2, 3, 8), torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool)),
            "pad mask",
            "at least one real token (True) per example, got none in examples [1]",
        ),
        (Tokens(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)), "tokens", "expected x of shape (2, T, 8)"),
        (Tokens(torch.zeros(2, 3, 8, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)), "tokens", "float"),
        (Tokens(torch.full((2, 3, 8), torch.nan), torch.ones(2, 3, dtype=torch.bool)), "tokens", "finite"),
        (
            Tokens(torch.zeros(2, 3, 8), torch.ones(2, 3, dtype=torch.bool), torch.zeros(4, 2)),
            "tokens",
            "positions must be (T, A)",
        ),
        ("not tokens", "tokens", "must return attnlab.Tokens"),
    ],
)
def test_contract_violations_are_named(tokens, check, detail):
    with pytest.raises(contract.ContractError) as info:
        contract.check_tokens("demo", tokens, dim=8, batch_size=2)
    assert f"plugin 'demo' failed check '{check}'" in str(info.value)
    assert detail in str(info.value)


def test_nan_in_padding_is_allowed():
    x = torch.zeros(2, 3, 8)
    x[1, 2] = torch.nan
    mask = torch.tensor([[True, True, True], [True, True, False]])
    contract.check_tokens("demo", Tokens(x, mask), dim=8, batch_size=2)


def test_an_inverted_pad_mask_is_caught_through_the_input_lengths():
    real_first = torch.tensor([[True, True, True], [True, False, False]])
    lengths = torch.tensor([30, 10])
    contract.check_pad_mask("demo", Tokens(torch.zeros(2, 3, 8), real_first), lengths)
    with pytest.raises(contract.ContractError, match=r"check 'pad mask'.*length 30 has 1, one of length 10 has 2"):
        contract.check_pad_mask("demo", Tokens(torch.zeros(2, 3, 8), ~real_first | torch.eye(2, 3).bool()), lengths)


def test_unknown_modality_lists_the_known_ones():
    with pytest.raises(Exception, match=r"unknown modality 'nope'; known modalities: .*cnn, .*vision"):
        plugins.get("nope")
