"""Bad data, as users bring it: every case ends in one line and exit code 2, before training.

The data half of the bad-input catalogue (the config-value half is ``tests/test_bad_inputs.py``).
Files come from packages nobody on the project wrote (scikit-learn's and matplotlib's sample
images, SciPy's test WAVs), truncated, emptied, linked in loops or made unreadable. Each
case runs the ``attnlab`` entry point in-process with its argv and checks: exit code 2, one
``attnlab: error:`` line naming the key or file, no traceback, and that what the run folder
held before is still there. A few run as real subprocesses to prove the wiring, and a folder
with one corrupt file among good ones trains and reports the count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import scipy.io
import sklearn.datasets
import soundfile
from PIL import Image

from attnlab import cli
from conftest import BIN

SAMPLE_IMAGES = Path(sklearn.datasets.__file__).parent / "images"  # china.jpg, flower.jpg
MPL_SAMPLES = Path(matplotlib.get_data_path()) / "sample_data"  # grace_hopper.jpg, Minduka_Present_Blue_Pack.png
SCIPY_WAVS = Path(scipy.io.__file__).parent / "tests" / "data"
SMALL_RUN = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "backbone.dim=16",
    "backbone.heads=2",
    "backbone.depth=1",
    "data.batch_size=4",
    "logger=csv",
]
KEPT = "notes from an earlier run\n"


# --- real files, made bad -----------------------------------------------------------


def good_images(folder: Path, n: int, photo: str = "china.jpg") -> None:
    """``n`` small PNGs cut from a real photograph (different crops, so they differ)."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(SAMPLE_IMAGES / photo) as image:
        for i in range(n):
            crop = image.crop((20 * i, 10 * i, 20 * i + 96, 10 * i + 96)).resize((24, 24))
            crop.save(folder / f"{folder.name}{i}.png")


def truncated(source: Path, target: Path, keep: float = 0.3) -> Path:
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def image_folder(root: Path, per_class: int = 8, classes: tuple[str, ...] = ("china", "flower")) -> Path:
    """One folder per class of crops of one of the two sample photographs."""
    for k, name in enumerate(classes):
        good_images(root / name, per_class, ("china.jpg", "flower.jpg")[k % 2])
    return root


def sound_folder(root: Path, per_class: int = 6) -> Path:
    """Two labels of short WAVs cut from SciPy's real test recordings."""
    sources = {"mono": "test-44100Hz-le-1ch-4bytes.wav", "stereo": "test-44100Hz-2ch-32bit-float-le.wav"}
    for label, name in sources.items():
        samples, rate = soundfile.read(SCIPY_WAVS / name)
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            soundfile.write(root / label / f"{i}.wav", np.roll(samples, 7 * i, axis=0), rate)
    return root


def symlink_loop(folder: Path, suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"loop_a{suffix}").symlink_to(f"loop_b{suffix}")
    (folder / f"loop_b{suffix}").symlink_to(f"loop_a{suffix}")


def huge_png(path: Path) -> Path:
    """A real PNG whose header claims 60000 x 60000 pixels: a decompression bomb to refuse."""
    with Image.open(MPL_SAMPLES / "Minduka_Present_Blue_Pack.png") as image:
        image.save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR width and height (the CRC no longer fits either)
    path.write_bytes(bytes(data))
    return path


# --- the cases ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A bad input: what to write under ``tmp``, the overrides, and what the one line must say."""

    make: Callable[[Path], None]
    overrides: list[str]
    message: str
    extra: list[str] = field(default_factory=list)
    composed: bool = True  # False: refused once composed, before the job starts (no job.json)


def images(tmp: Path) -> None:
    image_folder(tmp / "imgs")


def with_truncated_jpeg(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    truncated(MPL_SAMPLES / "grace_hopper.jpg", tmp / "imgs" / "china" / "hopper.jpg")


def with_truncated_png(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    truncated(MPL_SAMPLES / "Minduka_Present_Blue_Pack.png", tmp / "imgs" / "flower" / "present.png", 0.5)


def with_empty_image(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    (tmp / "imgs" / "flower" / "empty.jpg").write_bytes(b"")


def with_image_loop(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    symlink_loop(tmp / "imgs" / "china", ".png")


def with_dangling_image_link(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    (tmp / "imgs" / "china" / "gone.png").symlink_to(tmp / "nowhere.png")


def with_huge_image(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    huge_png(tmp / "imgs" / "flower" / "bomb.png")


def with_text_as_image(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    shutil.copy(Path(sklearn.datasets.__file__).parent / "images" / "README.txt", tmp / "imgs" / "china" / "readme.jpg")


def with_unreadable_image(tmp: Path) -> None:
    image_folder(tmp / "imgs")
    locked = tmp / "imgs" / "china" / "locked.png"
    shutil.copy(tmp / "imgs" / "china" / "china0.png", locked)
    locked.chmod(0)


def all_of_a_class_bad(tmp: Path) -> None:
    good_images(tmp / "imgs" / "china", 8, "china.jpg")
    for i in range(3):
        truncated(MPL_SAMPLES / "grace_hopper.jpg", tmp / "imgs" / "flower" / f"{i}.jpg", 0.2 + 0.1 * i)


def one_class(tmp: Path) -> None:
    good_images(tmp / "imgs" / "china", 10)


def rare_class(tmp: Path) -> None:
    good_images(tmp / "imgs" / "china", 10, "china.jpg")
    good_images(tmp / "imgs" / "flower", 2, "flower.jpg")


def no_classes(tmp: Path) -> None:
    (tmp / "imgs").mkdir()
    shutil.copy(SAMPLE_IMAGES / "china.jpg", tmp / "imgs")


def no_images_in_a_class(tmp: Path) -> None:
    good_images(tmp / "imgs" / "china", 6)
    (tmp / "imgs" / "notes").mkdir()
    shutil.copy(SAMPLE_IMAGES / "README.txt", tmp / "imgs" / "notes")


def other_test_classes(tmp: Path) -> None:
    image_folder(tmp / "imgs" / "train")
    image_folder(tmp / "imgs" / "test", 2, ("china", "tulip"))


def root_is_a_file(tmp: Path) -> None:
    shutil.copy(SAMPLE_IMAGES / "china.jpg", tmp / "china.jpg")


def sounds(tmp: Path) -> None:
    sound_folder(tmp / "wavs")


def with_unsupported_wav(tmp: Path) -> None:
    sound_folder(tmp / "wavs")
    shutil.copy(SCIPY_WAVS / "test-8000Hz-le-3ch-5S-36bit.wav", tmp / "wavs" / "mono" / "36bit.wav")


def with_wav_without_data(tmp: Path) -> None:
    sound_folder(tmp / "wavs")
    shutil.copy(SCIPY_WAVS / "test-44100Hz-le-1ch-4bytes-early-eof-no-data.wav", tmp / "wavs" / "stereo" / "eof.wav")


def with_incomplete_chunk(tmp: Path) -> None:
    sound_folder(tmp / "wavs")
    shutil.copy(SCIPY_WAVS / "test-44100Hz-le-1ch-4bytes-incomplete-chunk.wav", tmp / "wavs" / "mono" / "chunk.wav")


def with_empty_wav(tmp: Path) -> None:
    sound_folder(tmp / "wavs")
    (tmp / "wavs" / "mono" / "empty.wav").write_bytes(b"")


def with_truncated_wav_header(tmp: Path) -> None:
    sound_folder(tmp / "wavs")
    truncated(SCIPY_WAVS / "test-44100Hz-le-1ch-4bytes.wav", tmp / "wavs" / "stereo" / "cut.wav", 0.002)


def with_wav_loop(tmp: Path) -> None:
    sound_folder(tmp / "wavs")
    symlink_loop(tmp / "wavs" / "mono", ".wav")


def one_label(tmp: Path) -> None:
    sound_folder(tmp / "wavs")
    shutil.rmtree(tmp / "wavs" / "stereo")


def reviews(tmp: Path, rows: str = "", name: str = "train.csv") -> Path:
    good = "".join(f"review number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(20))
    path = tmp / name
    path.write_text("text,label\n" + good + rows)
    return path


def csv_with_extra_field(tmp: Path) -> None:
    reviews(tmp, "a review, with a comma,pos\n")


def csv_all_bad(tmp: Path) -> None:
    (tmp / "train.csv").write_text("text,label\none,two,three\nfour,five,six\n")


def jsonl_with_a_list(tmp: Path) -> None:
    rows = [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(10)]
    (tmp / "train.jsonl").write_text("\n".join(rows[:5] + ["[1, 2]"] + rows[5:]) + "\n")


def jsonl_broken(tmp: Path) -> None:
    (tmp / "train.jsonl").write_text('{"text": "fine", "label": "a"}\n{"text": "cut off\n')


def csv_without_column(tmp: Path) -> None:
    (tmp / "train.csv").write_text("sentence,label\nhello,a\n")


def csv_empty(tmp: Path) -> None:
    (tmp / "train.csv").write_bytes(b"")


def image_as_csv(tmp: Path) -> None:
    shutil.copy(MPL_SAMPLES / "Minduka_Present_Blue_Pack.png", tmp / "train.csv")


def utf16_csv(tmp: Path) -> None:
    """A spreadsheet export in UTF-16 (a wrong encoding, not just a few bad bytes)."""
    path = reviews(tmp)
    path.write_bytes(path.read_text().encode("utf-16"))


def unknown_suffix(tmp: Path) -> None:
    (tmp / "train.xlsx").write_bytes(b"PK\x03\x04")


def single_label(tmp: Path) -> None:
    (tmp / "train.csv").write_text("text,label\n" + "".join(f"t{i},same\n" for i in range(12)))


def unseen_test_label(tmp: Path) -> None:
    reviews(tmp)
    (tmp / "test.csv").write_text("text,label\nmeh,neutral\n")


def conll_ragged(tmp: Path) -> None:
    (tmp / "train.conll").write_text("EU NNP B-ORG\nrejects VBZ O\n\nPeter B-PER\n")


def conll_good(tmp: Path) -> None:
    (tmp / "train.conll").write_text("EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\n\n" * 10)


def conll_only_comments(tmp: Path) -> None:
    (tmp / "train.conll").write_text("# a comment\n-DOCSTART- -X- O\n\n")


def lra_wrong_header(tmp: Path) -> None:
    for split in ("train", "val", "test"):
        (tmp / f"basic_{split}.tsv").write_text("Expression\tValue\n[MAX 1 2 ]\t2\n")


def nothing(tmp: Path) -> None:
    pass


IMG = ["data=imagefolder", "data.source.root={tmp}/imgs"]
WAV = ["modality=speech", "data=audiofolder", "data.source.root={tmp}/wavs"]
TXT = ["modality=text", "data=textfiles"]
STRICT = ["data.bad_files=error"]

CASES: dict[str, Case] = {
    # images
    "image root not set": Case(nothing, ["data=imagefolder"], "data.source.root is not set"),
    "image root missing": Case(nothing, IMG, "data.source.root={tmp}/imgs does not exist"),
    "image root is a file": Case(
        root_is_a_file, ["data=imagefolder", "data.source.root={tmp}/china.jpg"], "is not a folder"
    ),
    "no class folders": Case(no_classes, IMG, "{tmp}/imgs has no class sub-folders"),
    "class folder without images": Case(no_images_in_a_class, IMG, "class folder {tmp}/imgs/notes has no .png"),
    "truncated jpeg, strict": Case(with_truncated_jpeg, IMG + STRICT, "{tmp}/imgs/china/hopper.jpg: cannot be decoded"),
    "truncated png, strict": Case(with_truncated_png, IMG + STRICT, "{tmp}/imgs/flower/present.png: cannot be decoded"),
    "empty image, strict": Case(with_empty_image, IMG + STRICT, "{tmp}/imgs/flower/empty.jpg: empty file (0 bytes)"),
    "image symlink loop, strict": Case(with_image_loop, IMG + STRICT, "{tmp}/imgs/china/loop_a.png: a symlink loop"),
    "dangling image link, strict": Case(
        with_dangling_image_link, IMG + STRICT, "{tmp}/imgs/china/gone.png: a dangling symlink"
    ),
    "huge image, strict": Case(with_huge_image, IMG + STRICT, "{tmp}/imgs/flower/bomb.png: cannot be decoded"),
    "text named .jpg, strict": Case(with_text_as_image, IMG + STRICT, "{tmp}/imgs/china/readme.jpg: cannot be decoded"),
    "unreadable image, strict": Case(
        with_unreadable_image, IMG + STRICT, "{tmp}/imgs/china/locked.png: permission denied"
    ),
    "a class of only bad files": Case(all_of_a_class_bad, IMG, "class folder {tmp}/imgs/flower has no readable files"),
    "a single class": Case(one_class, IMG, "all 10 examples (china 10) are of one class"),
    "too few of a class": Case(rare_class, IMG, "class 'flower' has 2, each class needs at least 3"),
    "val share too small": Case(
        images, [*IMG, "data.source.val_fraction=0.05"], "data.source.val_fraction=0.05 gives 1 of 16 examples"
    ),
    "test folder with other classes": Case(other_test_classes, IMG, "{tmp}/imgs/test has classes ['china', 'tulip']"),
    # settings refused once composed, before the job starts (attnlab.validate)
    "image size 0": Case(
        images, [*IMG, "data.source.image_size=0"], "data.source.image_size=0: must be an integer >= 1", composed=False
    ),
    "unknown bad_files policy": Case(
        images, [*IMG, "data.bad_files=ignore"], "data.bad_files=ignore: must be one of skip, error", composed=False
    ),
    "cifar root without cifar": Case(
        images, ["data=cifar10", "data.source.root={tmp}/imgs"], "data.source.root={tmp}/imgs holds no CIFAR-10 data"
    ),
    # audio
    "36-bit wav, strict": Case(with_unsupported_wav, WAV + STRICT, "{tmp}/wavs/mono/36bit.wav: cannot be decoded"),
    "wav without data, strict": Case(with_wav_without_data, WAV + STRICT, "{tmp}/wavs/stereo/eof.wav: cannot be"),
    "wav incomplete chunk, strict": Case(with_incomplete_chunk, WAV + STRICT, "{tmp}/wavs/mono/chunk.wav: cannot be"),
    "empty wav, strict": Case(with_empty_wav, WAV + STRICT, "{tmp}/wavs/mono/empty.wav: empty file (0 bytes)"),
    "truncated wav header, strict": Case(with_truncated_wav_header, WAV + STRICT, "{tmp}/wavs/stereo/cut.wav: cannot"),
    "wav symlink loop, strict": Case(with_wav_loop, WAV + STRICT, "{tmp}/wavs/mono/loop_a.wav: a symlink loop"),
    "one label of audio": Case(one_label, WAV, "all 6 examples (mono 6) are of one class"),
    "audio root missing": Case(nothing, WAV, "data.source.root={tmp}/wavs does not exist"),
    "sample rate 0": Case(
        sounds,
        [*WAV, "data.source.sample_rate=0"],
        "data.source.sample_rate=0: must be an integer >= 1",
        composed=False,
    ),
    "speechcommands missing": Case(
        nothing, ["modality=speech", "data=speechcommands", "data.source.root={tmp}/sc"], "{tmp}/sc does not exist"
    ),
    "generated digits without a cache": Case(
        nothing, ["modality=speech", "data.source.root=null"], "data.source.root is not set; give a cache folder"
    ),
    # text
    "text train not set": Case(nothing, TXT, "data.source.train is not set"),
    "text train missing": Case(
        nothing, [*TXT, "data.source.train={tmp}/no.csv"], "data.source.train={tmp}/no.csv is not"
    ),
    "text train is a folder": Case(nothing, [*TXT, "data.source.train={tmp}"], "is not a file"),
    "unknown text format": Case(unknown_suffix, [*TXT, "data.source.train={tmp}/train.xlsx"], "unknown format '.xlsx'"),
    "csv row with an extra field, strict": Case(
        csv_with_extra_field, [*TXT, "data.source.train={tmp}/train.csv", *STRICT], "{tmp}/train.csv:22: 3 fields"
    ),
    "csv of only bad rows": Case(
        csv_all_bad, [*TXT, "data.source.train={tmp}/train.csv"], "train.csv has no usable rows (its 2 bad line(s)"
    ),
    "jsonl with a list, strict": Case(
        jsonl_with_a_list, [*TXT, "data.source.train={tmp}/train.jsonl", *STRICT], "train.jsonl:6: expected a JSON"
    ),
    "jsonl cut off, strict": Case(
        jsonl_broken, [*TXT, "data.source.train={tmp}/train.jsonl", *STRICT], "train.jsonl:2: not a JSON object"
    ),
    "csv without the text column": Case(
        csv_without_column, [*TXT, "data.source.train={tmp}/train.csv"], "no column 'text'; columns found: sentence"
    ),
    "empty csv": Case(csv_empty, [*TXT, "data.source.train={tmp}/train.csv"], "train.csv is empty"),
    "png given as csv": Case(
        image_as_csv, [*TXT, "data.source.train={tmp}/train.csv"], "{tmp}/train.csv is not a text file (it holds NUL"
    ),
    "utf-16 csv": Case(utf16_csv, [*TXT, "data.source.train={tmp}/train.csv"], "{tmp}/train.csv is not a text file"),
    "a single text label": Case(single_label, [*TXT, "data.source.train={tmp}/train.csv"], "are of one class"),
    "a test label train never saw": Case(
        unseen_test_label,
        [
            *TXT,
            "data.source.train={tmp}/train.csv",
            "data.source.val={tmp}/train.csv",
            "data.source.test={tmp}/test.csv",
        ],
        "label 'neutral' in the test split",
    ),
    "text max_length 0": Case(
        nothing,
        [*TXT, "data.source.train={tmp}/t.csv", "data.source.max_length=0"],
        "data.source.max_length=0: must be an integer >= 1",
        composed=False,
    ),
    "ragged conll, strict": Case(
        conll_ragged, ["modality=text", "data=conll", "data.source.train={tmp}/train.conll", *STRICT], "conll:4: 2 col"
    ),
    "conll without sentences": Case(
        conll_only_comments, ["modality=text", "data=conll", "data.source.train={tmp}/train.conll"], "no usable sent"
    ),
    "listops files with another header": Case(
        lra_wrong_header, ["modality=text", "data.source.root={tmp}"], "expected LRA's header 'Source<TAB>Target'"
    ),
    # the modality the data needs
    "a text dataset without modality=": Case(
        nothing, ["data=listops"], "is a dataset of modality text", composed=False
    ),
    "speech data with the cnn modality": Case(nothing, ["modality=cnn", "data=spoken_digits"], "add modality=speech"),
    # the head the data needs
    "ctc on images": Case(nothing, ["head=ctc"], "head=ctc predicts a label sequence per example, but Digits has one"),
    "token head on images": Case(nothing, ["head=token"], "use head=sequence, or leave head out"),
    "sequence head on token labels": Case(
        conll_good,
        ["modality=text", "data=conll", "data.source.train={tmp}/train.conll", "head=sequence"],
        "head=sequence predicts one label per example, but CoNLL has one label per token (task 'token')",
    ),
}


def run_inprocess(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str]:
    """``attnlab <argv>`` in this process: the exit code and stderr."""
    saved = sys.argv
    sys.argv = ["attnlab", *argv]
    try:
        cli.train_main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = saved
    return code, capsys.readouterr().err


def prepare(name: str, tmp_path: Path) -> tuple[list[str], str, Path]:
    case = CASES[name]
    if name == "unreadable image, strict" and os.geteuid() == 0:
        pytest.skip("running as root: a chmod 000 file stays readable, so there is nothing to refuse")
    case.make(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text(KEPT)
    argv = [o.format(tmp=tmp_path) for o in case.overrides] + ["logger=csv", f"hydra.run.dir={run}"]
    return argv, case.message.format(tmp=tmp_path), run


def assert_one_line(code: object, stderr: str, message: str, run: Path, composed: bool = True) -> None:
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("attnlab: error:")]
    assert len(errors) == 1 and message in errors[0], stderr[-3000:]
    assert (run / "notes.txt").read_text() == KEPT, "what the run folder held before is kept"
    if not composed:  # refused before the job started: it wrote nothing
        assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
        return
    status = json.loads((run / "job.json").read_text())
    assert status["status"] == "failed" and status["user_error"] and message in status["error"]


def test_the_catalogue_is_large_and_names_files_and_keys():
    assert len(CASES) >= 50
    assert sum("strict" in name for name in CASES) >= 15


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_data_is_one_line_and_exit_2(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, message, run = prepare(name, tmp_path)
    code, stderr = run_inprocess(argv, capsys)
    assert_one_line(code, stderr, message, run, CASES[name].composed)
    if "strict" in name and "{tmp}/" in CASES[name].message:
        assert str(tmp_path) in (run / "bad_files.txt").read_text(), "the bad files are listed in the run folder"


@pytest.mark.parametrize(
    "name", ["truncated jpeg, strict", "36-bit wav, strict", "csv row with an extra field, strict"]
)
def test_console_script_gives_the_same_line(name, tmp_path):
    argv, message, run = prepare(name, tmp_path)
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run([str(BIN / "attnlab"), *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert_one_line(result.returncode, result.stderr, message, run, CASES[name].composed)


def test_one_corrupt_file_among_good_ones_trains_and_reports_the_count(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with_truncated_jpeg(tmp_path)
    (tmp_path / "imgs" / "flower" / "empty.png").write_bytes(b"")
    run = tmp_path / "run"
    argv = [*IMG, "data.source.image_size=16", "frontend.patch_size=8", *SMALL_RUN, f"hydra.run.dir={run}"]
    code, stderr = run_inprocess([a.format(tmp=tmp_path) for a in argv], capsys)
    assert code == 0, stderr[-3000:]
    warnings = [line for line in stderr.splitlines() if "left out" in line]
    assert len(warnings) == 1 and "left out 2 input(s) that cannot be read (data.bad_files=skip)" in warnings[0]
    listed = dict(line.split("\t") for line in (run / "bad_files.txt").read_text().splitlines())
    assert set(listed) == {str(tmp_path / "imgs/china/hopper.jpg"), str(tmp_path / "imgs/flower/empty.png")}
    assert "truncated" in listed[str(tmp_path / "imgs/china/hopper.jpg")]
    assert json.loads((run / "metrics.json").read_text())["test/acc"] >= 0.0
    saved = (run / "config.yaml").read_text()
    assert "class_names:\n    - china\n    - flower" in saved, "the confusion matrix names the folders"


def test_a_second_run_remembers_which_files_decode(tmp_path, caplog):
    """The full decode happens once; a later set-up on the same files reads the verdicts."""
    import logging

    from attnlab.data import DataModule
    from attnlab_vision import ImageFolder

    with_truncated_png(tmp_path)
    source = ImageFolder(root=str(tmp_path / "imgs"), image_size=16)
    with caplog.at_level(logging.INFO):
        first = DataModule(source, cache_dir=str(tmp_path / "cache"), seed=0)
        first.setup()
    assert "decoding 17 file(s) once" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = DataModule(source, cache_dir=str(tmp_path / "cache"), seed=0)
        again.setup()
    assert "decoding" not in caplog.text and again.bad.items == first.bad.items
    changed = tmp_path / "imgs" / "flower" / "present.png"
    shutil.copy(tmp_path / "imgs" / "flower" / "flower0.png", changed)  # fixed: decoded again, now good
    fixed = DataModule(source, cache_dir=str(tmp_path / "cache"), seed=0)
    fixed.setup()
    assert not fixed.bad.items and sum(len(fixed.split(s)) for s in ("train", "val", "test")) == 17
