"""A catalogue of bad settings and overrides, each answered in one line before any work.

Every case runs a console entry point in-process with its argv, as ``attnlab ...`` would,
pointed at the folder of an earlier run. It must end with exit status 2 and exactly one
line on stderr that names the key (or folder) and says what would work; no traceback;
no data read or generated; and the earlier run's files as they were. A few run as real
subprocesses to prove the wiring. Bad data files and folders: ``tests/test_bad_data.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnlab import cli, threads
from conftest import BIN

FAST = ["logger=csv", "trainer.enable_progress_bar=false"]

# (argv, what the one line must contain). In-process, all with `attnlab` unless the first
# word is `attnlab-eval`.
CASES: dict[str, tuple[list[str], list[str]]] = {
    # values: types and ranges, checked against the constructors' annotations
    "batch_size_zero": (["data.batch_size=0"], ["data.batch_size=0", "integer >= 1"]),
    "batch_size_negative": (["data.batch_size=-5"], ["data.batch_size=-5", "integer >= 1"]),
    "batch_size_text": (["modality=text", "data.batch_size=abc"], ["data.batch_size=abc", "integer >= 1"]),
    "num_workers_negative": (["data.num_workers=-1"], ["data.num_workers=-1", "integer >= 0"]),
    "fraction_above_one": (["data.source.val_fraction=1.5"], ["data.source.val_fraction=1.5", "in (0, 1)"]),
    "speech_batch_size": (["modality=speech", "data.batch_size=0"], ["data.batch_size=0", ">= 1"]),
    "lr_negative": (["optimizer.lr=-1"], ["optimizer (torch.optim.AdamW) rejected", "Invalid learning rate: -1"]),
    "lr_text": (["optimizer.lr=abc"], ["optimizer.lr=abc", "a number"]),
    "lr_sgd": (["optimizer=sgd", "optimizer.lr=-0.1"], ["optimizer (torch.optim.SGD)", "Invalid learning rate"]),
    "weight_decay_nan": (["optimizer.weight_decay=nan"], ["optimizer (torch.optim.AdamW)", "weight_decay"]),
    "betas_one_value": (["optimizer.betas=[0.9]"], ["optimizer.betas=[0.9]", "a list of 2"]),
    "seed_text": (["seed=abc"], ["seed=abc", "integer in [0, 4294967295] or null"]),
    "seed_negative": (["seed=-1"], ["seed=-1", "integer in [0, 4294967295]"]),
    "seed_fraction": (["seed=1.5"], ["seed=1.5", "integer"]),
    "compile_word": (["compile=yes"], ["compile=yes", "true or false"]),
    "tags_string": (["tags=foo"], ["tags=foo", "a list of strings"]),
    "max_epochs_text": (["trainer.max_epochs=abc"], ["trainer.max_epochs=abc", "integer or null"]),
    "precision_unknown": (["trainer.precision=17"], ["trainer.precision=17", "bf16-mixed"]),
    "dim_zero": (["backbone.dim=0"], ["backbone.dim=0", "integer >= 1"]),
    "depth_float": (["backbone.depth=2.0"], ["backbone.depth=2.0", "integer >= 0"]),
    "dropout_above_one": (["backbone.dropout=1.5"], ["backbone.dropout=1.5", "in [0, 1)"]),
    "positions_unknown": (["backbone.positions=spiral"], ["backbone.positions=spiral", "sinusoidal, learned, rope"]),
    "topk_zero": (["backbone.attention.topk=0"], ["backbone.attention.topk=0", "integer >= 1 or null"]),
    "score_unknown": (["backbone.attention.score=cosine"], ["backbone.attention.score=cosine", "scaled_dot"]),
    "window_zero": (["backbone.attention.window=0"], ["backbone.attention.window=0", ">= 1 or null"]),
    "cls_token_word": (["backbone.cls_token=maybe"], ["backbone.cls_token=maybe", "true or false"]),
    "lstm_kind": (["backbone=lstm", "backbone.kind=rnn"], ["backbone.kind=rnn", "lstm, gru"]),
    "lstm_hidden": (["backbone=lstm", "backbone.hidden=0"], ["backbone.hidden=0", ">= 1"]),
    "pooling_unknown": (["head.pooling=max"], ["head.pooling=max", "auto, cls, mean"]),
    "warmup_whole_run": (["scheduler.warmup_fraction=1"], ["scheduler.warmup_fraction=1", "in [0, 1)"]),
    "maps_examples": (["callbacks.attention_maps.examples=0"], ["callbacks.attention_maps.examples=0", ">= 1"]),
    "checkpoint_top_k": (["callbacks.model_checkpoint.save_top_k=all"], ["save_top_k=all", "an integer"]),
    "wandb_mode": (["logger=wandb", "logger.wandb.mode=online2"], ["logger.wandb.mode=online2", "offline"]),
    "ckpt_path_number": (["ckpt_path=5"], ["ckpt_path=5", "a string or null"]),
    "maps_folder_under_a_file": (
        [f"callbacks.attention_maps.dirpath={__file__}/maps"],
        [f"callbacks.attention_maps.dirpath={__file__}/maps cannot be created", "is a file"],
    ),
    # keys nothing reads
    "added_backbone_key": (["+backbone.nope=1"], ["backbone.nope", "has no setting 'nope'", "depth, heads"]),
    "added_lstm_key": (["backbone=lstm", "+backbone.layers=2"], ["backbone.layers", "RecurrentEncoder", "hidden"]),
    "added_top_level_key": (["+epochs=3"], ["epochs", "no setting 'epochs'", "seed"]),
    "added_optimizer_key": (["+optimizer.betas2=1"], ["optimizer.betas2", "did you mean betas?"]),
    "interpolation_to_nothing": (["backbone.dim=${nope}"], ["backbone.dim=${nope}", "cannot be resolved"]),
    "target_misspelt": (["optimizer._target_=torch.optim.Adamw"], ["torch.optim.Adamw does not exist", "'Adamw'"]),
    # Hydra's composition errors, as one line listing what would work
    "group_option_unknown": (["backbone=nope"], ["backbone=nope", "gru, lstm, none, small, tiny"]),
    "experiment_unknown": (["experiment=nope"], ["experiment=nope", "attention_zoo"]),
    "hydra_group_unknown": (["hydra/launcher=nope"], ["hydra/launcher=nope", "basic, joblib"]),
    "key_unknown": (["backbone.nope=1"], ["backbone.nope=1", "backbone=tiny", "no setting 'nope'", "depth"]),
    "plain_key_unknown": (["paths.nope=1"], ["paths.nope=1", "data_dir, output_dir", "+paths.nope=1"]),
    "top_level_unknown": (["nope=1"], ["nope=1", "seed", "+nope=1"]),
    "lstm_window": (["backbone=lstm", "backbone.attention.window=16"], ["backbone.attention.window=16", "lstm"]),
    "override_malformed": (["backbone.dim=="], ["'backbone.dim=='", "key=value"]),
    "override_without_value": (["backbone.dim"], ["'backbone.dim'", "key=value"]),
    "append_existing": (["+seed=1"], ["+seed=1", "already", "seed=1"]),
    "delete_missing": (["~nope"], ["~nope", "no key 'nope'"]),
    "list_without_multirun": (["backbone.dim=32,64"], ["backbone.dim=32,64", "-m", "[32,64]"]),
    "hydra_setting_type": (["hydra.job.chdir=abc"], ["hydra.job.chdir=abc", "not a valid bool"]),
    "modality_unknown": (["modality=audio"], ["modality 'audio'", "cnn, speech, text, vision"]),
    "dataset_unknown": (["data=mnist"], ["data=mnist", "cifar10"]),
    # a dataset without its modality
    "text_dataset_alone": (["data=conll"], ["data=conll", "modality text", "modality=text data=conll"]),
    "speech_dataset_alone": (["data=spoken_digits"], ["data=spoken_digits", "modality=speech"]),
    # attnlab-eval
    "eval_without_checkpoint": (["attnlab-eval"], ["ckpt_path", "required"]),
    "eval_extra_key": (["attnlab-eval", "ckpt_path=x.ckpt", "+epochs=1"], ["epochs", "no setting"]),
}


@pytest.fixture
def earlier_run(tmp_path: Path) -> Path:
    """The folder of an earlier run, which a bad command pointed at it must leave as it was."""
    run = tmp_path / "earlier"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (run / "config.yaml").write_text("seed: 1\n")
    (run / "metrics.json").write_text(json.dumps({"val/acc": 0.9}))
    (run / "job.json").write_text(json.dumps({"status": "completed"}))
    (run / "train.log").write_text("trained\n")
    (run / "checkpoints" / "last.ckpt").write_bytes(os.urandom(64))
    return run


def tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.fixture
def no_data_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if a run reaches its datamodule (reading or generating data)."""
    import attnlab.evaluate
    import attnlab.train

    def touched(*args, **kwargs):
        raise AssertionError("the run reached its data before refusing")

    monkeypatch.setattr(attnlab.train, "build_datamodule", touched)
    monkeypatch.setattr(attnlab.evaluate, "build_datamodule", touched)


def run_inprocess(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    main = cli.train_main
    if argv and argv[0] == "attnlab-eval":
        main, argv = cli.eval_main, argv[1:]
    monkeypatch.setattr(sys, "argv", ["attnlab", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


def assert_one_line(code: int, err: str, expected: list[str]) -> str:
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("attnlab: error: "), err
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_before_any_work(case, earlier_run, tmp_path, monkeypatch, capsys, no_data_work):
    argv, expected = CASES[case]
    monkeypatch.chdir(tmp_path)
    before = tree(earlier_run)
    program, rest = (argv[:1], argv[1:]) if argv[:1] == ["attnlab-eval"] else ([], argv)
    code, err = run_inprocess([*program, *FAST, f"hydra.run.dir={earlier_run}", *rest], monkeypatch, capsys)
    assert_one_line(code, err, expected)
    assert "Traceback" not in err
    assert tree(earlier_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier"]  # no other folder appeared


def unwritable_places(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "at-all")
    places = {"under_a_file": a_file / "run", "in_a_link_loop": tmp_path / "loop-a" / "run"}
    places["under_a_dangling_link"] = tmp_path / "dangling" / "run"
    if Path("/proc/self").is_dir():
        places["under_proc"] = Path("/proc/attnlab-test/run")
    if os.geteuid() != 0:  # root writes into read-only folders
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
        places["read_only"] = read_only / "run"
    return places


PLACES = ["under_a_file", "in_a_link_loop", "under_a_dangling_link", "under_proc", "read_only"]


@pytest.mark.parametrize("place", PLACES)
def test_a_run_folder_that_cannot_be_written_is_one_line(place, tmp_path, monkeypatch, capsys, no_data_work):
    places = unwritable_places(tmp_path)
    if place not in places:
        pytest.skip(f"no {place} place on this machine (or running as root)")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    code, err = run_inprocess([*FAST, f"hydra.run.dir={places[place]}"], monkeypatch, capsys)
    assert_one_line(code, err, [f"hydra.run.dir={places[place]} cannot be"])
    assert tree(tmp_path) == before


def test_a_sweep_folder_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys, no_data_work):
    monkeypatch.chdir(tmp_path)
    sweep = unwritable_places(tmp_path)["under_a_file"].with_name("sweep")
    code, err = run_inprocess(["-m", *FAST, "seed=1,2", f"hydra.sweep.dir={sweep}"], monkeypatch, capsys)
    assert_one_line(code, err, [f"hydra.sweep.dir={sweep} cannot be created", "is a file"])


def test_each_sweep_job_is_checked_before_its_work_and_recorded(tmp_path, monkeypatch, capsys, no_data_work):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    argv = ["-m", *FAST, "data.batch_size=0,-3", f"hydra.sweep.dir={sweep}"]
    monkeypatch.setattr(sys, "argv", ["attnlab", *argv])
    with pytest.raises(SystemExit) as exit_:
        cli.train_main()
    assert exit_.value.code == 1  # every job ran and failed; the sweep says so
    for job, value in (("0", "0"), ("1", "-3")):
        status = json.loads((sweep / job / "job.json").read_text())
        assert status["status"] == "failed" and status["user_error"], status
        assert status["error"] == (f"data.batch_size={value}: must be an integer >= 1 (attnlab.data.DataModule)")
    assert "Traceback" not in capsys.readouterr().err


def test_eval_checks_the_data_settings_it_is_given(tmp_path, monkeypatch, capsys, no_data_work):
    """``attnlab-eval``'s ``data.*`` go on top of the checkpoint's own: checked before any data is read."""
    from attnlab.callbacks import EmbedRunConfig

    for name in threads.ENV_THREADS:  # no thread count set by the user: no "threads: ..." info line before the error
        monkeypatch.delenv(name, raising=False)

    source = {"_target_": "attnlab_vision.Digits", "image_size": 32}
    data = {"_target_": "attnlab.data.DataModule", "source": source, "batch_size": 8}
    ckpt = tmp_path / "best.ckpt"
    torch.save({EmbedRunConfig.KEY: {"config": {"data": data}, "data_info": {"num_classes": 10}}}, ckpt)
    monkeypatch.chdir(tmp_path)
    argv = ["attnlab-eval", *FAST, f"hydra.run.dir={tmp_path / 'run'}", f"ckpt_path={ckpt}"]
    code, err = run_inprocess([*argv, "+data.batch_size=0"], monkeypatch, capsys)
    assert_one_line(code, err, ["data.batch_size=0: must be an integer >= 1"])
    code, err = run_inprocess([*argv, "+data.batch_sise=16"], monkeypatch, capsys)
    assert_one_line(code, err, ["data.batch_sise", "did you mean batch_size?"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["callbacks.model_checkpoint.mode=best"], "callbacks.model_checkpoint (pytorch_lightning.callbacks"),
        (["trainer.devices=0"], "trainer (pytorch_lightning.Trainer) rejected its settings"),
        (["trainer.strategy=nope"], "trainer (pytorch_lightning.Trainer) rejected its settings"),
    ],
    ids=["checkpoint_mode", "devices_zero", "strategy_unknown"],
)
def test_settings_a_library_rejects_are_one_line_naming_the_node(argv, expected, tmp_path, monkeypatch, capsys):
    """Lightning checks these when it builds its objects, once the data is set up."""
    monkeypatch.chdir(tmp_path)
    code, err = run_inprocess([*FAST, "debug=fdr", f"hydra.run.dir={tmp_path / 'run'}", *argv], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"attnlab: error: {expected}"), err
    assert json.loads((tmp_path / "run" / "job.json").read_text())["status"] == "failed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there to use")
def test_a_gpu_asked_for_where_there_is_none_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [*FAST, "debug=fdr", "trainer.accelerator=gpu", f"hydra.run.dir={tmp_path / 'run'}"]
    code, err = run_inprocess(argv, monkeypatch, capsys)
    errors = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and len(errors) == 1 and "trainer (pytorch_lightning.Trainer) rejected" in errors[0], err


@pytest.mark.parametrize(
    ("program", "argv", "expected"),
    [
        ("attnlab", ["data.batch_size=0"], "data.batch_size=0: must be an integer >= 1"),
        ("attnlab", ["backbone=nope"], "backbone=nope: there is no such backbone; choose one of gru, lstm"),
        ("attnlab", ["hydra.run.dir=RUN/a-file/run"], "cannot be created: RUN/a-file is a file, not a folder"),
        ("attnlab-eval", [], "ckpt_path is required but has no value (???)"),
    ],
    ids=["value", "hydra", "folder", "eval"],
)
def test_console_scripts_answer_in_one_line(program, argv, expected, tmp_path):
    """The installed commands, in real processes: nothing else reaches stderr."""
    (tmp_path / "a-file").write_text("")
    argv = [a.replace("RUN", str(tmp_path)) for a in argv]
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [str(BIN / program), "logger=csv", f"hydra.run.dir={tmp_path / 'run'}", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line(result.returncode, result.stderr, [expected.replace("RUN", str(tmp_path))])
    assert not (tmp_path / "run").exists()
