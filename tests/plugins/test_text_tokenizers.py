"""Text plugin tokenizers: round trips, fixed special ids, save/load, subword label alignment."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.errors import ConfigError
from attnlab.heads import IGNORE_INDEX
from attnlab_text import BPETokenizer, ByteTokenizer, CharTokenizer, WordPieceTokenizer, WordTokenizer
from attnlab_text.data import first_subword_labels
from attnlab_text.tokenizer import CLS_ID, PAD_ID, SPECIALS, UNK_ID, load_or_fit

CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "unbelievable things happen to believable cats",
    "the mat was flat and the log was long",
] * 4
ANYTHING = "  héllo\twörld 🙂\n\nnaïve   café, «quotes» — 東京 \x00end "
KINDS = {
    "char": lambda: CharTokenizer(min_frequency=1),
    "word": lambda: WordTokenizer(min_frequency=1),
    "bpe": lambda: BPETokenizer(vocab_size=300, min_frequency=2),
    "wordpiece": lambda: WordPieceTokenizer(vocab_size=200, min_frequency=1),
}


def trained(kind: str, texts: list[str] = CORPUS):
    tok = ByteTokenizer() if kind == "byte" else KINDS[kind]()
    tok.fit(texts)
    return tok


def roundtrip(tok, text: str) -> str:
    return tok.decode(tok.encode([text])[0].tolist())


@pytest.mark.parametrize("text", [ANYTHING, "", "plain ascii", "\udcff".encode("utf-8", "replace").decode()])
def test_byte_tokenizer_is_lossless_and_never_unknown(text):
    tok = ByteTokenizer()
    ids = tok.encode([text])[0]
    assert roundtrip(tok, text) == text
    assert len(ids) == len(text.encode("utf-8")) and (ids >= len(SPECIALS)).all() and tok.vocab_size == 259


def test_bpe_is_lossless_on_any_text_even_unseen_characters():
    tok = trained("bpe")
    for text in (ANYTHING, CORPUS[0], "", "   "):
        assert roundtrip(tok, text) == text
    assert UNK_ID not in tok.encode([ANYTHING])[0]


def test_char_word_wordpiece_round_trip_on_text_they_can_represent():
    char = trained("char", [*CORPUS, "two\nlines\t"])
    assert roundtrip(char, "the  cat\ta log\n") == "the  cat\ta log\n"
    assert roundtrip(trained("word"), "the dog sat on the mat") == "the dog sat on the mat"
    assert roundtrip(trained("wordpiece"), "the believable dog sat") == "the believable dog sat"


def test_unknown_symbols_become_unk_and_min_frequency_is_respected():
    word = WordTokenizer(min_frequency=3)
    word.fit(CORPUS[:5])  # "the" appears 6 times, "cat" twice
    ids = word.encode(["the cat zebra"])[0].tolist()
    assert ids[0] > CLS_ID and ids[1:] == [UNK_ID, UNK_ID]
    assert trained("char").encode(["q"])[0].tolist() == [UNK_ID]


@pytest.mark.parametrize("kind", ["byte", *KINDS])
def test_special_tokens_have_fixed_ids(kind):
    tok = trained(kind)
    if kind != "byte":
        assert [tok.ready.token_to_id(s) for s in SPECIALS] == [PAD_ID, UNK_ID, CLS_ID]
    assert all(PAD_ID not in ids and CLS_ID not in ids for ids in tok.encode(CORPUS))


@pytest.mark.parametrize("kind", ["byte", *KINDS])
def test_saved_and_reloaded_tokenizer_gives_identical_ids(kind, tmp_path):
    tok = trained(kind)
    assert not load_or_fit(tok, CORPUS, tmp_path / "tok") or kind == "byte"
    again = ByteTokenizer() if kind == "byte" else KINDS[kind]()
    assert load_or_fit(again, ["entirely different text that would train another vocabulary"], tmp_path / "tok")
    probe = [*CORPUS, "cats and unbelievable logs"]
    assert again.vocab_size == tok.vocab_size
    assert all(np.array_equal(a, b) for a, b in zip(tok.encode(probe), again.encode(probe)))


def test_reloading_with_other_settings_is_refused(tmp_path):
    load_or_fit(BPETokenizer(vocab_size=300), CORPUS, tmp_path)
    with pytest.raises(ConfigError, match=r"holds a tokenizer made with .*'vocab_size': 300.* fresh run folder"):
        load_or_fit(BPETokenizer(vocab_size=400), CORPUS, tmp_path)


def test_bad_settings_fail_in_one_line():
    with pytest.raises(ConfigError, match="min_frequency=0"):
        WordTokenizer(min_frequency=0)
    with pytest.raises(ConfigError, match="vocab_size=2 for bpe must exceed"):
        BPETokenizer(vocab_size=2)


WORDS = ["unbelievable", "cats", "sat", "on", "the", "mat"]
LABELS = [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("kind", ["byte", *KINDS])
def test_word_labels_go_to_the_first_subword_of_each_word(kind):
    tok = trained(kind)
    ids, offsets = tok.encode_offsets([" ".join(WORDS)])[0]
    aligned = first_subword_labels(offsets, WORDS, LABELS)
    assert aligned.shape == ids.shape
    assert aligned[aligned != IGNORE_INDEX].tolist() == LABELS  # each word once, in order
    # the labelled token is the one that starts the word
    text = " ".join(WORDS)
    starts = {text.index(w): label for w, label in zip(WORDS, LABELS)}
    for (s, _e), label in zip(offsets.tolist(), aligned.tolist()):
        if label != IGNORE_INDEX:
            assert starts[s + (text[s] == " ")] == label


def test_subwords_after_the_first_are_ignored():
    tok = trained("wordpiece")
    ids, offsets = tok.encode_offsets(["catdogs"])[0]
    assert len(ids) > 1, "the test needs a word split into pieces"
    aligned = first_subword_labels(offsets, ["catdogs"], [7])
    assert aligned.tolist() == [7] + [IGNORE_INDEX] * (len(ids) - 1)


def test_no_words_means_nothing_to_label():
    assert first_subword_labels(np.zeros((0, 2), dtype=np.int64), [], []).tolist() == []
