"""Text attention view: tokens named with the run's saved tokenizer, relevance per token."""

from __future__ import annotations

import torch

from attnlab.explain import ExampleAttention
from attnlab_text import ByteTokenizer, WordTokenizer
from attnlab_text.data import TOKENIZER_DIR
from attnlab_text.maps import TokenNames, token_name
from attnlab_text.tokenizer import load_or_fit

TEXTS = ["the cat sat on the mat", "a dog sat on a log", "the dog saw the cat"]


def batch_of(ids: list[list[int]]) -> dict:
    lengths = torch.tensor([len(i) for i in ids])
    inputs = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, seq in enumerate(ids):
        inputs[row, : len(seq)] = torch.tensor(seq)
    return {"inputs": inputs, "lengths": lengths, "target": torch.zeros(len(ids))}


def test_tokens_are_named_after_the_tokenizer_the_run_saved(tmp_path):
    load_or_fit(WordTokenizer(min_frequency=1), TEXTS, tmp_path / TOKENIZER_DIR)
    trained = WordTokenizer(min_frequency=1)
    trained.load(tmp_path / TOKENIZER_DIR)
    ids = trained.encode(["the dog sat", "cat zebra on the mat"])
    view = TokenNames(WordTokenizer(min_frequency=1), save_dir=str(tmp_path))
    batch = batch_of([list(i) for i in ids])
    assert view.labels(batch, 0) == ["the", "dog", "sat"]  # padding is not named
    assert view.labels(batch, 1) == ["cat", "<unk>", "on", "the", "mat"]


def test_without_a_saved_tokenizer_tokens_stay_numbered(tmp_path):
    view = TokenNames(WordTokenizer(min_frequency=1), save_dir=str(tmp_path))
    assert view.labels(batch_of([[5, 6]]), 0) is None


def test_bytes_need_nothing_saved_and_specials_keep_their_names():
    byte = ByteTokenizer()
    ids = [2, *byte.encode(["hé!"])[0].tolist()]  # <cls>, h, two bytes of é, !
    names = TokenNames(None).labels(batch_of([ids]), 0)
    assert names == ["<cls>", "h", f"#{ids[2]}", f"#{ids[3]}", "!"]
    assert token_name(byte, 0) == "<pad>"


def test_overlay_shows_each_tokens_relevance_under_its_name(tmp_path):
    byte = ByteTokenizer()
    ids = byte.encode(["abc"])[0].tolist()
    relevance = torch.tensor([0.5, 0.3, 0.2])
    attention = ExampleAttention(
        weights=torch.full((1, 1, 3, 3), 1 / 3), rollout=torch.full((3, 3), 1 / 3), relevance=relevance, has_cls=False
    )
    fig = TokenNames(byte).overlay(batch_of([ids]), 0, attention)
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == relevance.tolist()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
