"""The console scripts as a user runs them: one-line errors, plugins list, Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import BIN, ROOT


def run(*args: str, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["modality=audio"], "unknown modality 'audio'; known modalities: cnn, speech, text, vision"),
        (["data=mnist"], "unknown dataset data=mnist; known datasets: audiofolder, cifar10, conll, digits, hf"),
        (["backbone.dim=100", "backbone.heads=3"], "backbone.dim=100 is not divisible by backbone.heads=3"),
        (["data.source.image_size=120"], "data.source.image_size=120 is not divisible by frontend.patch_size=16"),
        (["data=cifar10", "data.source.root=/no/such/dir"], "data.source.root=/no/such/dir does not exist"),
        (["ckpt_path=/no/such.ckpt"], "ckpt_path=/no/such.ckpt does not exist"),
    ],
    ids=["modality", "data", "heads", "patch", "root", "ckpt"],
)
def test_bad_input_ends_in_one_line_without_traceback(overrides, message, tmp_path):
    result = run(str(BIN / "attnlab"), *overrides, "logger=csv", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_plugins_command_lists_name_description_and_source(tmp_path):
    result = run(str(BIN / "attnlab-plugins"), cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for name in ("vision", "cnn"):
        assert any(line.startswith(f"│ {name} ") for line in lines), result.stdout
    assert "attnlab 0.1.0" in result.stdout and "patch" in result.stdout


def test_python_dash_m_runs_into_hydra_run_dir(tmp_path):
    run_dir = tmp_path / "here"
    result = run(sys.executable, "-m", "attnlab", "debug=fdr", "logger=csv", f"hydra.run.dir={run_dir}", cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"test/acc", "val/acc"} <= set(json.loads((run_dir / "metrics.json").read_text()))
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    assert f"run folder: {run_dir}" in result.stdout


def test_ctrl_c_keeps_last_checkpoint_and_tells_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    small = ["data.source.image_size=32", "backbone.dim=32", "backbone.heads=2", "backbone.depth=1"]
    overrides = ["logger=csv", "trainer.max_epochs=200", "trainer.limit_train_batches=3", *small]
    proc = subprocess.Popen(
        [str(BIN / "attnlab"), *overrides, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WANDB_MODE": "offline"},
        # Ctrl-C as at a terminal: a suite started in the background (`make test &`) hands its
        # processes an ignored SIGINT, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), "no checkpoint appeared"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    hint = f"interrupted; resume from the end of its latest epoch with: attnlab {' '.join(overrides)}"
    assert f"{hint} ckpt_path=last hydra.run.dir='{run_dir}'\n" in stderr  # the folder was given: it is repeated
    state = torch.load(last, weights_only=False)
    assert state["global_step"] > 0 and "attnlab" in state

    resumed = tmp_path / "resumed"
    limits = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]
    result = run(
        str(BIN / "attnlab"),
        "logger=csv",
        *limits,
        *small,
        f"trainer.max_epochs={state['epoch'] + 2}",
        f"ckpt_path={last}",
        f"hydra.run.dir={resumed}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] > state["global_step"]


def test_the_startup_heap_is_frozen_once_and_jobs_objects_stay_collectable(tmp_path):
    # What a sweep run in one process does: _freeze_startup_heap before every job. Only the first
    # call freezes; a cycle made by a job after it is still collected (no job's objects are kept).
    probe = """
import gc, weakref
from attnlab import cli
gc.disable()  # as train_main starts
cli._freeze_startup_heap()
frozen = gc.get_freeze_count()
assert gc.isenabled()  # the job runs with the collector on
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a
alive = weakref.ref(a)
cli._freeze_startup_heap()
del a, b
gc.collect()
print(frozen > 0, gc.get_freeze_count() == frozen, alive() is None)
"""
    result = run(sys.executable, "-c", probe, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


def test_the_collector_is_paused_only_while_the_command_starts(monkeypatch):
    import gc

    from attnlab import cli

    seen = []

    def app(task, config_name):
        seen.append(gc.isenabled())
        raise SystemExit(2)  # e.g. a config error before any job

    monkeypatch.setattr(cli, "_hydra_app", app)
    with pytest.raises(SystemExit):
        cli.train_main()
    assert seen == [False] and gc.isenabled()
