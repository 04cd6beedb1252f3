"""Checkpoints and resuming: last.ckpt is the latest epoch, writes are atomic, a killed run
resumes into the same run, `ckpt_path=last` finds the run or refuses in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attnlab.checkpoints import AtomicCheckpointIO
from attnlab.errors import ConfigError
from attnlab.resume import LAST, checkpoint_to_resume, find_run
from attnlab.train import train
from conftest import BIN, FAST, ROOT

PATTERN = "outputs/runs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"
STOP = "+callbacks.stop._target_=helpers.StopAtEpoch"
# A short deterministic run as a user would start it: 3 batches an epoch, a tiny model, no logger.
SMALL = [
    "seed=1",
    "trainer.deterministic=true",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.batch_size=16",
    "data.source.image_size=32",
    "backbone.dim=32",
    "backbone.heads=2",
    "backbone.depth=1",
    "~callbacks.confusion_matrix",
    "~logger",
    STOP,
]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left():
    yield
    while STARTED:  # a failed test leaves no run behind (a paused one would sleep for minutes)
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start(args: list[str], cwd: Path, log: Path, **env: str) -> subprocess.Popen:
    """``attnlab <args>`` as a separate process; its output goes to ``log`` (a pipe could fill and block it).

    It leads a process group of its own (with its loader workers), as a batch job does.
    """
    # One thread each: the test runs two side by side on two cores.
    environ = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1", **env}
    with log.open("w") as out:
        command = [str(BIN / "attnlab"), *args]
        STARTED.append(subprocess.Popen(command, cwd=cwd, env=environ, stdout=out, stderr=out, start_new_session=True))
    return STARTED[-1]


def wait_for(marker: Path, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the run never reached the pause"
        time.sleep(0.1)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    proc.wait(timeout=timeout)
    return log.read_text()


# --- last.ckpt ---------------------------------------------------------------------


def test_last_ckpt_is_the_final_epoch_when_the_best_epoch_is_the_first(make_config, tmp_path):
    # lr=0 keeps the weights, so every epoch validates exactly alike and none beats the first.
    train(make_config(*FAST, "~logger", "test=false", "trainer.max_epochs=3", "optimizer.lr=0"))
    checkpoints = tmp_path / "run" / "checkpoints"
    best, last = load(checkpoints / "best.ckpt"), load(checkpoints / "last.ckpt")
    assert (best["epoch"], best["global_step"]) == (0, 3)
    assert (last["epoch"], last["global_step"]) == (2, 9)  # 3 epochs of 3 batches


# --- atomic writes -----------------------------------------------------------------

KILLED_WHILE_SAVING = """
import os, signal, sys
from pathlib import Path
import torch

class KillMe:  # pickled in the middle of torch.save
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)

path = Path(sys.argv[2])
checkpoint = {"weights": torch.ones(1000), "then": KillMe()}
if sys.argv[1] == "atomic":
    from attnlab.checkpoints import AtomicCheckpointIO
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
else:
    with path.open("wb") as f:
        torch.save(checkpoint, f)
"""


def test_a_save_killed_midway_leaves_the_previous_checkpoint(tmp_path):
    good = {"weights": torch.arange(1000.0)}
    paths = {"atomic": tmp_path / "atomic.ckpt", "plain": tmp_path / "plain.ckpt"}
    for path in paths.values():
        AtomicCheckpointIO().save_checkpoint(good, path)
    procs = [
        subprocess.Popen([sys.executable, "-c", KILLED_WHILE_SAVING, name, str(path)], stderr=subprocess.PIPE)
        for name, path in paths.items()
    ]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL
    assert torch.equal(load(paths["atomic"])["weights"], good["weights"])
    # The same kill during a plain write destroys the file: the kill did land mid-save.
    with pytest.raises(Exception):  # noqa: B017 - any load error: the file is truncated
        load(paths["plain"])


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise KeyboardInterrupt

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"weights": torch.zeros(3)}, path)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"weights": torch.ones(3), "x": Unpicklable()}, path)
    assert torch.equal(load(path)["weights"], torch.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# --- kill, resume, same run --------------------------------------------------------


def test_a_run_killed_at_an_epoch_boundary_resumes_into_the_same_run(tmp_path):
    args = [*SMALL, "trainer.max_epochs=4"]
    full = start([*args, f"hydra.run.dir={tmp_path / 'full'}"], tmp_path, tmp_path / "full.log")
    marker = tmp_path / "paused"
    killed = start(args, tmp_path, tmp_path / "killed.log", ATTNLAB_TEST_PAUSE=f"2:{marker}")
    wait_for(marker, killed, tmp_path / "killed.log")
    killed.kill()  # SIGKILL: no handler, no last words
    assert killed.wait(timeout=60) == -signal.SIGKILL
    (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert load(run / LAST)["epoch"] == 1  # the end of the second epoch

    resumed = start([*args, "ckpt_path=last"], tmp_path, tmp_path / "resumed.log")
    log = finish(resumed, tmp_path / "resumed.log")
    assert resumed.returncode == 0, log[-3000:]
    assert f"resuming from {run / LAST}" in log
    assert list((tmp_path / "outputs" / "runs").glob("*/*")) == [run]  # it continued in its own folder
    assert finish(full, tmp_path / "full.log") and full.returncode == 0

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert {"train/loss", "val/acc", "val/acc_best", "test/acc"} <= set(metrics)
    ours, reference = load(run / LAST), load(tmp_path / "full" / LAST)
    assert (ours["epoch"], ours["global_step"]) == (reference["epoch"], reference["global_step"]) == (3, 12)
    assert ours["state_dict"].keys() == reference["state_dict"].keys()
    for name, weight in reference["state_dict"].items():
        assert torch.equal(ours["state_dict"][name], weight), name


def test_sigterm_stops_the_run_and_the_command_it_prints_resumes_it(tmp_path):
    # SLURM, systemd and `kill -- -PGID` signal the whole job: the loader worker gets SIGTERM too.
    args = [*SMALL, "trainer.max_epochs=4", "data.num_workers=1"]
    hint = "stopped by SIGTERM; resume from the end of its latest epoch with: " + " ".join(
        ["attnlab", *args, "ckpt_path=last"]
    )
    for attempt, (command, epoch) in enumerate([(args, 1), ([*args, "ckpt_path=last"], 2)]):
        marker, log = tmp_path / f"paused{attempt}", tmp_path / f"run{attempt}.log"
        proc = start(command, tmp_path, log, ATTNLAB_TEST_PAUSE=f"{epoch}:{marker}")
        wait_for(marker, proc, log)
        os.killpg(proc.pid, signal.SIGTERM)
        output = finish(proc, log, timeout=120)
        assert proc.returncode == 143, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert hint + "\n" in output  # the same one word, also after a resume
        (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
        assert json.loads((run / "job.json").read_text())["status"] == "interrupted"
        last = load(run / LAST)
        # Stopped in the epoch after the pause: last.ckpt is the end of the one before.
        assert (last["epoch"], last["global_step"]) == (epoch - 1, 3 * epoch)
    assert f"resuming from {run / LAST}" in output


def test_resume_with_nothing_to_resume_is_one_line(tmp_path):
    result = subprocess.run(
        [str(BIN / "attnlab"), "ckpt_path=last", "~logger"],
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"attnlab: error: ckpt_path=last: nothing to resume: no run of `attnlab ~logger` under "
        f"{tmp_path / 'outputs' / 'runs'}; start it without ckpt_path=last"
    ]
    assert not (tmp_path / "outputs").exists()  # refused before Hydra made a run folder


def test_a_resumed_run_keeps_its_wandb_run_and_its_settings(make_config, tmp_path, monkeypatch):
    overrides = [*FAST, "trainer.max_epochs=2", "test=false", "~callbacks.confusion_matrix", STOP]
    monkeypatch.setenv("ATTNLAB_TEST_INTERRUPT", "1")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stopped:
            train(make_config(*overrides))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl-C once it has handled one
    assert stopped.value.code == 130
    monkeypatch.delenv("ATTNLAB_TEST_INTERRUPT")
    run = tmp_path / "run"
    run_id = (run / "wandb" / "attnlab-run-id").read_text().strip()

    with pytest.raises(ConfigError, match=r"was started with other settings \(optimizer.lr=0.001 there, 0.01 here\)"):
        train(make_config(*overrides, "ckpt_path=last", "optimizer.lr=0.01"))

    train(make_config(*overrides, "ckpt_path=last"))
    assert load(run / LAST)["global_step"] == 6
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline)

    train(make_config(*overrides))  # a new run in the same folder is a new W&B run
    assert (run / "wandb" / "attnlab-run-id").read_text().strip() != run_id


# --- finding the run ---------------------------------------------------------------


def make_run(root: Path, name: str, overrides: list[str], status: str = "interrupted", last: bool = True, **extra):
    folder = root / "outputs" / "runs" / "2026-01-01" / name
    folder.mkdir(parents=True)
    record = {"status": status, "overrides": overrides, "started": f"2026-01-01T{name[:8].replace('-', ':')}"}
    (folder / "job.json").write_text(json.dumps({**record, **extra}))
    if last:
        (folder / LAST).parent.mkdir()
        (folder / LAST).write_bytes(b"")
    return folder


def test_ckpt_path_last_finds_the_newest_unfinished_run_of_the_same_overrides(tmp_path):
    make_run(tmp_path, "10-00-00-000000", ["seed=2"])
    newest = make_run(tmp_path, "11-00-00-000000", ["seed=2", "ckpt_path=last"])  # itself resumed once
    make_run(tmp_path, "12-00-00-000000", ["seed=3"])  # other overrides
    assert find_run(PATTERN, ["seed=2", "ckpt_path=last"], cwd=tmp_path) == newest
    assert find_run(str(newest), ["seed=2"], cwd=tmp_path) == newest  # a fixed folder (hydra.run.dir)


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"status": "completed"}, "nothing to resume: the newest run of `attnlab seed=2`, {folder}, completed"),
        ({"last": False}, "the newest run of `attnlab seed=2`, {folder}, stopped before its first epoch ended"),
        (
            {"status": "running", "pid": os.getpid(), "host": socket.gethostname()},
            "the newest run of `attnlab seed=2`, {folder}, is still running (pid {pid})",
        ),
        ({"overrides": ["seed=3"]}, "nothing to resume: no run of `attnlab seed=2` under {root}"),
    ],
    ids=["completed", "no-checkpoint", "running", "other-overrides"],
)
def test_ckpt_path_last_refuses_a_run_it_cannot_continue(run, message, tmp_path):
    run = dict(run)
    folder = make_run(tmp_path, "10-00-00-000000", run.pop("overrides", ["seed=2"]), **run)
    expected = message.format(folder=folder, pid=os.getpid(), root=tmp_path / "outputs" / "runs")
    with pytest.raises(ConfigError) as error:
        find_run(PATTERN, ["seed=2", "ckpt_path=last"], cwd=tmp_path)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_job_resumes_from_its_own_folder_when_asked_or_requeued_by_slurm(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    with pytest.raises(ConfigError, match=f"nothing to resume: {tmp_path} has no checkpoints/last.ckpt"):
        checkpoint_to_resume("last", tmp_path)
    (tmp_path / LAST).parent.mkdir()
    (tmp_path / LAST).write_bytes(b"")
    assert checkpoint_to_resume("last", tmp_path) == (tmp_path / LAST, True)
    assert checkpoint_to_resume(None, tmp_path) == (None, False)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert checkpoint_to_resume(None, tmp_path) == (tmp_path / LAST, True)
    other = tmp_path / "elsewhere.ckpt"
    assert checkpoint_to_resume(str(other), tmp_path) == (other, False)
