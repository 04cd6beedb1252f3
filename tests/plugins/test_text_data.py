"""Text plugin data: the ListOps generator, each loader on small files, bad input, batches."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import statistics
import sys
import time

import numpy as np
import pytest
import torch

from attnlab.data import BadItems, DataModule
from attnlab.errors import ConfigError, DataError
from attnlab.types import IGNORE_INDEX
from attnlab_text import (
    BPETokenizer,
    ByteTokenizer,
    CoNLL,
    HFDataset,
    ListOps,
    ListOpsGeneration,
    TextFiles,
    TokenEmbedding,
    WordTokenizer,
)
from attnlab_text import listops as lo
from attnlab_text.data import collate_text
from attnlab_text.tokenizer import CLS_ID, PAD_ID

SMALL = ListOpsGeneration(seed=3, train=300, val=40, test=40, min_length=8, max_length=48, max_depth=5, max_args=4)

# --- ListOps ------------------------------------------------------------------------


def reference_value(source: str) -> int:
    """An evaluator independent of the generator: a stack machine over LRA's string form."""
    ops = {
        "[MIN": min,
        "[MAX": max,
        "[MED": lambda a: int(statistics.median(a)),
        "[SM": lambda a: sum(a) % 10,
    }
    stack: list[list] = [[]]
    for tok in source.split():
        if tok in ("(", ")"):
            continue
        if tok in ops:
            stack.append([tok])
        elif tok == "]":
            op, *args = stack.pop()
            stack[-1].append(ops[op](args))
        else:
            stack[-1].append(int(tok))
    (value,) = stack[0]
    return value


def reference_depths(source: str) -> list[int]:
    out, depth = [], 0
    for tok in source.split():
        depth += tok.startswith("[")
        out.append(depth)
        depth -= tok == "]"
    return out


def test_listops_values_agree_with_an_independent_evaluator():
    rows = lo.generate(SMALL)
    assert [len(rows[s]) for s in ("train", "val", "test")] == [300, 40, 40]
    every = [r for s in rows.values() for r in s]
    assert len({src for src, _ in every}) == len(every), "sources are unique across splits"
    for source, value in every:
        assert reference_value(source) == value
        tokens = [t for t in source.split() if t not in "()"]
        assert SMALL.min_length < len(tokens) < SMALL.max_length
        assert max(reference_depths(" ".join(tokens))) <= SMALL.max_depth - 1
    assert len({v for _, v in every}) == 10


def test_listops_is_written_in_lra_layout_once_and_reused(tmp_path):
    folder = lo.ensure_generated(tmp_path, SMALL)
    files = lo.split_files(folder)
    lines = files["train"].read_text().splitlines()
    assert lines[0] == "Source\tTarget" and len(lines) == 301
    source, target = lines[1].split("\t")
    assert re.fullmatch(r"\( (\( )*\[(MIN|MAX|MED|SM) .* \] \)", source) and int(target) in range(10)
    stamps = {s: p.stat().st_mtime_ns for s, p in files.items()}
    assert lo.ensure_generated(tmp_path, SMALL) == folder
    assert {s: p.stat().st_mtime_ns for s, p in files.items()} == stamps
    assert lo.generate(SMALL) == lo.generate(SMALL) != lo.generate(ListOpsGeneration(**{**vars(SMALL), "seed": 4}))


def write_lra_files(folder) -> None:
    example = "( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"  # [MAX 2 9 [MIN 4 7 ] 0 ]
    for split in ("train", "val", "test"):
        rows = [example, "( ( ( [SM 5 ) 8 ) ] )", "( ( ( [MED 1 ) 6 ) ] )"]
        body = "".join(f"{r}\t{reference_value(r)}\n" for r in rows)
        (folder / f"basic_{split}.tsv").write_text("Source\tTarget\n" + body)


def test_official_lra_files_in_root_are_read_instead_of_generated(tmp_path):
    write_lra_files(tmp_path)
    raw = ListOps(root=str(tmp_path)).read(BadItems())
    assert raw.train.texts[0] == "[MAX 2 9 [MIN 4 7 ] 0 ]" and raw.train.targets[:3] == ["9", "3", "3"]
    assert raw.labels == [str(v) for v in range(10)] and not (tmp_path / "listops").exists()
    kept = ListOps(root=str(tmp_path), parentheses=True).read(BadItems())
    assert kept.train.texts[0].startswith("( ( ( ( [MAX 2 )")


def test_listops_depth_labels_every_token(tmp_path):
    write_lra_files(tmp_path)
    raw = ListOps(root=str(tmp_path), labels="depth", generation=SMALL).read(BadItems())
    assert raw.per_token and raw.train.words[0] == ["[MAX", "2", "9", "[MIN", "4", "7", "]", "0", "]"]
    assert raw.train.targets[0] == ["1", "1", "1", "2", "2", "2", "2", "1", "1"]
    assert raw.labels == ["1", "2", "3", "4"]
    with pytest.raises(ConfigError, match="labels='sum' is unknown"):
        ListOps(root=str(tmp_path), labels="sum")


# --- the user's files ---------------------------------------------------------------


def module(source, tmp_path=None, tokenizer=None, batch_size=4, max_length=512, **kwargs) -> DataModule:
    save = str(tmp_path / "run") if tmp_path is not None else None
    tokenizer = tokenizer or WordTokenizer(min_frequency=1)
    source = dataclasses.replace(source, tokenizer=tokenizer, max_length=max_length)
    dm = DataModule(source, batch_size=batch_size, save_dir=save, seed=0, **{"bucket": True, **kwargs})
    dm.setup()
    return dm


def examples(dm: DataModule, split: str) -> list[dict]:
    data = dm.split(split).examples
    return [data[i] for i in range(len(data))]


REVIEWS = [("great fun", "pos"), ("dull and slow", "neg"), ("loved it", "pos"), ("boring", "neg")] * 5


def test_csv_tsv_and_jsonl_with_string_labels_and_the_mapping_saved(tmp_path):
    (tmp_path / "train.csv").write_text("review,stars\n" + "".join(f'"{t}",{y}\n' for t, y in REVIEWS))
    (tmp_path / "val.tsv").write_text('stars\treview\nneg\tso "dull"\npos\tfun\n')
    test_rows = [json.dumps({"review": t, "stars": y}) for t, y in REVIEWS[:4]]
    (tmp_path / "test.jsonl").write_text("\n".join(test_rows) + "\n\n")
    source = TextFiles(
        train=str(tmp_path / "train.csv"),
        val=str(tmp_path / "val.tsv"),
        test=str(tmp_path / "test.jsonl"),
        text_column="review",
        label_column="stars",
    )
    dm = module(source, tmp_path)
    assert dm.class_names == ["neg", "pos"] and dm.data_info()["num_classes"] == 2
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [20, 2, 4]
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == {"labels": ["neg", "pos"]}
    assert (tmp_path / "run" / "tokenizer" / "tokenizer.json").is_file()
    assert [ex["target"] for ex in examples(dm, "test")] == [1, 0, 1, 0]


def test_missing_splits_are_cut_by_seed_stratified(tmp_path):
    (tmp_path / "all.csv").write_text("text,label\n" + "".join(f"{t} {i},{y}\n" for i, (t, y) in enumerate(REVIEWS)))
    source = TextFiles(train=str(tmp_path / "all.csv"), val_fraction=0.2, test_fraction=0.2, split_seed=1)
    a, b = source.read(BadItems()), source.read(BadItems())
    assert (
        a.test.texts == b.test.texts and len(a.test.texts) == 4 and sorted(a.test.targets) == ["neg"] * 2 + ["pos"] * 2
    )
    assert set(a.train.texts).isdisjoint(a.val.texts + a.test.texts)
    other = TextFiles(train=str(tmp_path / "all.csv"), val_fraction=0.2, test_fraction=0.2, split_seed=2).read(
        BadItems()
    )
    assert other.test.texts != a.test.texts


def test_a_label_in_test_that_train_never_saw_is_named(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood,pos\nbad,neg\n")
    (tmp_path / "test.csv").write_text("text,label\nmeh,neutral\n")
    source = TextFiles(
        train=str(tmp_path / "train.csv"), val=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv")
    )
    with pytest.raises(DataError, match=r"label 'neutral' in the test split \(.*test.csv\) never appears in train"):
        module(source)


def test_a_missing_column_lists_the_columns_found(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"sentence": "hi", "label": 1}\n')
    with pytest.raises(DataError, match=r"train.jsonl:1: no column 'text'; columns found: sentence, label"):
        TextFiles(train=str(tmp_path / "train.jsonl")).read(BadItems())


def test_invalid_utf8_is_replaced_and_counted_never_fatal(tmp_path, caplog):
    rows = b"text,label\n" + b"caf\xe9 ok,a\n" + b"fine,b\n" * 9 + b"\xff\xfe bad,a\n" * 9
    (tmp_path / "train.csv").write_bytes(rows)
    with caplog.at_level(logging.WARNING):
        dm = module(TextFiles(train=str(tmp_path / "train.csv")), tokenizer=ByteTokenizer())
    assert "train.csv: 19 invalid UTF-8 sequence(s) replaced with U+FFFD" in caplog.text
    assert sum(len(dm.split(s)) for s in ("train", "val", "test")) == 19


def test_empty_texts_and_whitespace_only_lines(tmp_path, caplog):
    body = "text\tlabel\n" + "\tx\n" + "   \t   \n" + "\n" + "words here\ty\n" * 9 + "   \tx\n" * 9
    (tmp_path / "train.tsv").write_text(body)
    with caplog.at_level(logging.INFO):
        dm = module(TextFiles(train=str(tmp_path / "train.tsv")))
    assert (
        "skipped 2 blank line(s)" in caplog.text and "empty text(s) are encoded as a single <cls> token" in caplog.text
    )
    lengths = [len(ex["inputs"]) for s in ("train", "val", "test") for ex in examples(dm, s)]
    assert len(lengths) == 19 and min(lengths) == 1
    batch = next(iter(dm.train_dataloader()))
    assert (batch["lengths"] >= 1).all()


def read_strictly(source) -> None:
    """Read with ``data.bad_files=error``: the first bad row stops it, named."""
    bad = BadItems("error")
    source.read(bad)
    bad.settle()


def test_an_empty_label_is_an_error_with_the_line(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\nfine,a\nno label,\n")
    with pytest.raises(DataError, match=r"train.csv:3: empty label in column 'label'"):
        read_strictly(TextFiles(train=str(tmp_path / "train.csv")))


def test_truncation_is_logged_once_per_split(tmp_path, caplog):
    (tmp_path / "train.csv").write_text("text,label\n" + "a b c d e f g,x\nshort,y\n" * 10)
    with caplog.at_level(logging.WARNING):
        dm = module(TextFiles(train=str(tmp_path / "train.csv")), max_length=3)
    notes = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(notes) == 3 and all("longer than data.source.max_length=3" in n for n in notes)
    assert max(len(ex["inputs"]) for ex in examples(dm, "train")) == 3


# --- CoNLL --------------------------------------------------------------------------

CONLL = """-DOCSTART- -X- O O

EU NNP B-ORG
rejects VBZ O
German JJ B-MISC
lamb NN O

Peter NNP B-PER
Blackburn NNP I-PER
"""


def test_conll_reads_sentences_and_the_label_column(tmp_path):
    (tmp_path / "train.conll").write_text(CONLL * 6)
    raw = CoNLL(train=str(tmp_path / "train.conll"), label_column=1, val_fraction=0.25, test_fraction=0.25).read(
        BadItems()
    )
    assert raw.per_token and len(raw.train.words) + len(raw.val.words) + len(raw.test.words) == 12
    assert ["EU", "rejects", "German", "lamb"] in raw.train.words + raw.val.words + raw.test.words
    ner = CoNLL(train=str(tmp_path / "train.conll"), test=str(tmp_path / "train.conll")).read(BadItems())
    assert ner.test.targets[1] == ["B-PER", "I-PER"]


def test_a_ragged_conll_line_names_file_and_line(tmp_path):
    (tmp_path / "bad.conll").write_text("EU NNP B-ORG\nrejects O\n")
    with pytest.raises(DataError, match=r"bad.conll:2: 2 columns, but line 1 has 3"):
        read_strictly(CoNLL(train=str(tmp_path / "bad.conll")))


def test_a_ragged_conll_line_leaves_its_sentence_out_when_skipping(tmp_path):
    (tmp_path / "some.conll").write_text("EU NNP B-ORG\nrejects O\n\nPeter NNP B-PER\n")
    bad = BadItems("skip")
    raw = CoNLL(train=str(tmp_path / "some.conll"), test=str(tmp_path / "some.conll"), val=str(tmp_path / "some.conll"))
    assert raw.read(bad).train.words == [["Peter"]]
    assert [where for where, _ in bad.items] == [f"{tmp_path / 'some.conll'}:2"] * 3


def test_conll_subword_labels_go_to_the_first_piece(tmp_path):
    (tmp_path / "train.conll").write_text(CONLL * 6)
    source = CoNLL(
        train=str(tmp_path / "train.conll"), test=str(tmp_path / "train.conll"), val=str(tmp_path / "train.conll")
    )
    dm = module(source, tokenizer=BPETokenizer(vocab_size=265, min_frequency=1))
    item = examples(dm, "test")[0]  # EU rejects German lamb
    labelled = item["target"][item["target"] != IGNORE_INDEX]
    assert [dm.class_names[i] for i in labelled] == ["B-ORG", "O", "B-MISC", "O"]
    assert len(item["inputs"]) > 4 + 3, "BPE with a tiny vocabulary splits words (and keeps the spaces)"
    batch = next(iter(dm.test_dataloader()))
    assert batch["target"].shape == batch["inputs"].shape
    assert (batch["target"][batch["inputs"] == PAD_ID] == IGNORE_INDEX).all()


# --- Hugging Face datasets ----------------------------------------------------------


def test_hf_without_the_datasets_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'attnlab\[hf\]'"):
        HFDataset(name="imdb").read(BadItems())


def test_hf_without_network_or_cache_fails_quickly_and_clearly(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(DataError, match=r"'imdb' is not in .* and the Hub \(http://127.0.0.1:9\) cannot be reached"):
        HFDataset(name="imdb", cache_dir=str(tmp_path / "cache"), timeout=2.0).read(BadItems())
    assert time.monotonic() - start < 10


def test_hf_local_folder_with_string_labels(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "reviews"
    data.mkdir()
    for split, rows in (("train", REVIEWS), ("test", REVIEWS[:4])):
        (data / f"{split}.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    raw = HFDataset(name=str(data), cache_dir=str(tmp_path / "cache"), text_column="text").read(BadItems())
    assert len(raw.train.texts) + len(raw.val.texts) == 20 and raw.test.targets == ["pos", "neg", "pos", "neg"]
    with pytest.raises(DataError, match=r"no column 'review'; columns found: text, label"):
        HFDataset(name=str(data), cache_dir=str(tmp_path / "cache"), text_column="review").read(BadItems())


# --- batches and the front-end ------------------------------------------------------


def test_collate_pads_ids_and_token_targets():
    examples = [
        {"inputs": np.array([5, 6, 7]), "target": np.array([1, IGNORE_INDEX, 2])},
        {"inputs": np.array([8]), "target": np.array([0])},
    ]
    batch = collate_text(examples)
    assert batch["inputs"].tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]] and batch["lengths"].tolist() == [3, 1]
    assert batch["target"].tolist() == [[1, IGNORE_INDEX, 2], [0, IGNORE_INDEX, IGNORE_INDEX]]
    assert collate_text([{"inputs": np.array([3]), "target": 4}])["target"].tolist() == [4]


def test_token_embedding_masks_padding_and_ignores_what_is_behind_it():
    torch.manual_seed(0)
    emb = TokenEmbedding(vocab_size=10, dim=8, pad_id=PAD_ID)
    batch = collate_text([{"inputs": np.array([4, 5, 6]), "target": 0}, {"inputs": np.array([CLS_ID]), "target": 1}])
    tokens = emb(batch)
    tokens.check()
    assert tokens.pad_mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.equal(tokens.x[1, 1:], torch.zeros(2, 8))
    with pytest.raises(ConfigError, match="pad_id=10"):
        TokenEmbedding(vocab_size=10, dim=8, pad_id=10)


def test_bucketed_batches_cover_every_example_once(tmp_path):
    dm = module(ListOps(root=str(tmp_path), generation=SMALL), batch_size=16)
    seen = [i for batch in dm.train_dataloader().batch_sampler for _, i in batch]  # (epoch, index) keys
    assert sorted(seen) == list(range(300))

    def padded(loader) -> int:
        return sum(b["inputs"].numel() for b in loader)

    plain = module(ListOps(root=str(tmp_path), generation=SMALL), batch_size=16, bucket=False)
    assert padded(dm.train_dataloader()) < 0.8 * padded(plain.train_dataloader()), "similar lengths share a batch"


def test_a_saved_tokenizer_is_loaded_instead_of_trained(tmp_path):
    write_lra_files(tmp_path)
    first = module(ListOps(root=str(tmp_path)), tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "basic_train.tsv").write_text("Source\tTarget\n" + "( ( ( [MAX 1 ) 1 ) ] )\t1\n" * 3)
    for split in ("val", "test"):
        (other / f"basic_{split}.tsv").write_text((tmp_path / "basic_test.tsv").read_text())
    again = module(ListOps(root=str(other)), tmp_path)  # same run folder: same vocabulary, not retrained
    assert again.source.tokenizer.vocab_size == first.source.tokenizer.vocab_size
    assert np.array_equal(examples(again, "test")[0]["inputs"], examples(first, "test")[0]["inputs"])


def test_a_csv_row_with_too_many_fields_names_its_line(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\nfine,a\nhello, world,b\n")
    with pytest.raises(DataError, match=r"train.csv:3: 3 fields, but the header has 2 \(text, label\)"):
        read_strictly(TextFiles(train=str(tmp_path / "train.csv")))


def test_rows_that_cannot_be_parsed_are_left_out_counted_and_listed(tmp_path, caplog):
    good = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20))
    (tmp_path / "train.csv").write_text("text,label\n" + good + "hello, world,b\nno label,\n")
    with caplog.at_level(logging.WARNING):
        dm = module(TextFiles(train=str(tmp_path / "train.csv")), tmp_path)
    assert sum(len(dm.split(s)) for s in ("train", "val", "test")) == 20
    listed = (tmp_path / "run" / "bad_files.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in listed] == [f"{tmp_path / 'train.csv'}:{n}" for n in (22, 23)]
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("left out 2 input(s) that cannot be read")


def test_listops_depth_beyond_the_setting_says_which_setting_to_raise(tmp_path):
    write_lra_files(tmp_path)
    shallow = ListOpsGeneration(max_depth=2)
    with pytest.raises(DataError, match=r"basic_train.tsv:2: nesting depth 2 needs generation.max_depth >= 3"):
        ListOps(root=str(tmp_path), labels="depth", generation=shallow).read(BadItems())


def test_raw_features_are_token_counts(tmp_path):
    write_lra_files(tmp_path)
    dm = module(ListOps(root=str(tmp_path)), tmp_path)
    features, labels = dm.raw_features("test")
    rows = examples(dm, "test")
    assert features.shape == (3, dm.source.tokenizer.vocab_size) and labels.tolist() == [ex["target"] for ex in rows]
    for i, ex in enumerate(rows):
        counts = np.zeros(features.shape[1])
        for token in ex["inputs"]:
            counts[token] += 1
        assert np.array_equal(features[i].toarray().ravel(), counts)
