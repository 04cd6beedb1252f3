"""Sweeps as users launch them: multirun folders, failures, W&B grouping, the report, Optuna, launchers, DDP."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from attnlab import config
from attnlab.errors import ConfigError
from conftest import BIN
from helpers import open_in_browser, wandb_records

TINY = [
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "callbacks.throughput.window_size=2",
    "data.batch_size=16",
    "backbone.dim=32",
    "backbone.depth=1",
]


def attnlab(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    environment.pop("WANDB_MODE", None)  # mode=auto: offline, as there is no API key
    return subprocess.run([str(BIN / "attnlab"), *args], cwd=cwd, env=environment, capture_output=True, text=True)


def jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def wandb_run(job: Path) -> tuple[object, set[str], int]:
    """The run record, the history keys and the exit code of the job's one offline W&B run."""
    (path,) = job.glob("wandb/offline-run-*/run-*.wandb")
    run, keys, exit_code = None, set(), None
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return run, keys, exit_code


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2x2 sweep (heads x seed), run once for the tests below."""
    cwd = tmp_path_factory.mktemp("grid")
    result = attnlab("-m", *TINY, "backbone.heads=1,2", "seed=1,2", cwd=cwd)
    (sweep,) = (cwd / "outputs" / "multirun").glob("*/*")
    return sweep, result


def test_a_2x2_sweep_gives_four_jobs_with_metrics(grid):
    sweep, result = grid
    assert result.returncode == 0, result.stderr[-3000:]
    folders = jobs(sweep)
    assert [p.name for p in folders] == ["0", "1", "2", "3"]
    for job in folders:
        assert {"val/acc", "test/acc"} <= set(json.loads((job / "metrics.json").read_text()))
        assert json.loads((job / "job.json").read_text())["status"] == "completed"


def test_each_job_is_its_own_wandb_run_grouped_by_the_sweep(grid):
    sweep, _ = grid
    runs = [wandb_run(job) for job in jobs(sweep)]
    assert len({run.run_id for run, _, _ in runs}) == 4
    assert {run.run_group for run, _, _ in runs} == {"/".join(sweep.parts[-2:])}
    names = [run.display_name for run, _, _ in runs]
    for name, (heads, seed) in zip(names, [(1, 1), (1, 2), (2, 1), (2, 2)]):
        assert f"backbone.heads={heads}" in name and f"seed={seed}" in name
    for run, keys, exit_code in runs:
        assert run.job_type == "train" and exit_code == 0
        assert {"train/lr", "val/acc", "test/acc", "train/device/samples_per_sec"} <= keys
        assert any(k.startswith("test/confusion_matrix") for k in keys)


def test_one_wandb_folder_holds_the_whole_sweep(grid):
    sweep, _ = grid
    links = sorted((sweep / "wandb").iterdir())
    assert sorted(link.resolve() for link in links) == sorted(p.resolve() for p in sweep.glob("*/wandb/offline-run-*"))
    assert all(link.is_symlink() and not Path(os.readlink(link)).is_absolute() for link in links)
    # `wandb sync` in the sweep folder finds every job's run (--dry-run: nothing leaves the machine)
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_SILENT")}
    result = subprocess.run(
        [str(BIN / "wandb"), "sync", "--dry-run"], cwd=sweep, capture_output=True, text=True, env=env
    )
    assert "Would sync 4 run(s)" in result.stdout + result.stderr


def test_the_html_report_of_a_real_sweep_shows_every_job_and_setting(grid):
    sweep, _ = grid
    shown = open_in_browser(sweep / "report.html", TABLE_AND_CURVES)
    assert shown["errors"] == [] and shown["requests"] == []
    jobs, curves = shown["result"]
    assert sorted(jobs) == ["0", "1", "2", "3"]
    assert sorted(curves) == ["backbone.heads=1", "backbone.heads=2"]


TABLE_AND_CURVES = """() => {
  const job = [...document.querySelectorAll('#jobs .y-column')]
    .find(c => c.querySelector('#header').textContent === 'job');
  const cells = [...job.querySelectorAll('.column-block')].filter(b => b.id !== 'header')
    .flatMap(b => [...b.querySelectorAll('.column-cell')]).map(c => c.textContent);
  return [cells, [...document.querySelectorAll('#curves .legend .traces')].map(t => t.textContent)];
}"""


def test_report_has_one_row_per_job_and_a_plot(grid):
    sweep, _ = grid
    (sweep / "report.csv").unlink()  # written at the end of the sweep; the command writes it again
    result = subprocess.run([str(BIN / "attnlab-report"), str(sweep)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert sorted(r["job"] for r in rows) == ["0", "1", "2", "3"]
    # Settings (jobs differing only in the seed) are ranked by their mean, best first: accuracy is higher-is-better.
    means = {r["backbone.heads"]: float(r["setting_mean"]) for r in rows}
    ranks = {r["backbone.heads"]: int(r["rank"].rstrip("=")) for r in rows}
    assert sorted(means, key=lambda h: ranks[h]) == sorted(means, key=lambda h: -means[h])
    for heads, mean in means.items():
        assert mean == pytest.approx(sum(float(r["val/acc"]) for r in rows if r["backbone.heads"] == heads) / 2)
    for row in rows:
        job = sweep / row["job"]
        metrics = json.loads((job / "metrics.json").read_text())
        assert float(row["val/acc"]) == pytest.approx(metrics["val/acc"])
        overrides = json.loads((job / "job.json").read_text())["overrides"]
        assert {f"backbone.heads={row['backbone.heads']}", f"seed={row['seed']}"} <= set(overrides)
        assert row["status"] == "completed"
    assert (sweep / "report.png").stat().st_size > 0
    md = (sweep / "report.md").read_text()
    assert "Ranked by val/acc (higher is better)" in md and "| 95% CI ± | seeds |" in md and "backbone.heads=1" in md
    assert (sweep / "report.html").stat().st_size > 0


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    result = attnlab("-m", *TINY, "backbone.heads=2,3", f"hydra.sweep.dir={tmp_path}", "logger=csv", cwd=tmp_path)
    assert result.returncode == 1  # every job ran; the exit status says one failed
    ok, bad = jobs(tmp_path)
    assert (ok / "metrics.json").is_file() and not (bad / "metrics.json").exists()
    status = json.loads((bad / "job.json").read_text())
    assert status["status"] == "failed" and "backbone.heads=3" in status["error"]
    assert "Traceback" not in result.stderr
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [r["status"] for r in rows] == ["completed", "failed"]
    assert "not divisible by backbone.heads=3" in rows[1]["error"]


def fake_job(folder: Path, metrics: dict[str, float] | None, objective: dict[str, str] | None = None) -> None:
    """A finished (metrics) or failed (None) job folder as a training run leaves it."""
    folder.mkdir(parents=True)
    status = {
        "status": "completed" if metrics is not None else "failed",
        "overrides": [f"backbone.heads={folder.name}"],
    }
    if objective is not None:
        status["objective"] = objective
    (folder / "job.json").write_text(json.dumps(status))
    (folder / "config.yaml").write_text("head:\n  _target_: attnlab.heads.SequenceHead\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_report_ranks_best_first_in_the_objectives_direction(tmp_path):
    from attnlab.report import build_report

    losses = {"0": 0.7, "1": None, "2": 0.3, "3": 0.5}
    for name, loss in losses.items():
        metrics = None if loss is None else {"val/loss": loss, "test/loss": 1 - loss, "test/acc": loss}
        fake_job(tmp_path / name, metrics, {"metric": "val/loss", "mode": "min"})

    def order(report) -> list[str]:
        return [s.label.removeprefix("backbone.heads=") for s in report.settings]

    report = build_report(tmp_path)
    assert (report.metric, report.mode) == ("val/loss", "min")
    assert order(report) == ["2", "3", "0", "1"]  # lowest loss first, the failed job last
    # Another metric ranks in its own direction, as the head declares it.
    assert order(build_report(tmp_path, "test/loss")) == ["0", "3", "2", "1"]
    assert order(build_report(tmp_path, "test/acc")) == ["0", "3", "2", "1"]
    with pytest.raises(ConfigError, match="--metric val/accuracy is reported by no job"):
        build_report(tmp_path, "val/accuracy")


def test_report_of_a_running_sweep_shows_running_jobs(tmp_path):
    for name, status in (("0", {"status": "completed", "overrides": ["seed=1"]}), ("1", None)):
        job = tmp_path / name
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={int(name) + 1}\n")
        if status is not None:
            (job / "job.json").write_text(json.dumps(status))
            (job / "metrics.json").write_text(json.dumps({"val/acc": 0.5}))
    result = subprocess.run([str(BIN / "attnlab-report"), str(tmp_path), "--no-files"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout and "running" in result.stdout
    assert not (tmp_path / "report.csv").exists()


def test_report_of_a_folder_without_jobs_is_one_line(tmp_path):
    result = subprocess.run([str(BIN / "attnlab-report"), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("attnlab: error:") and "holds no jobs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_optuna_study_persists_and_failed_trials_do_not_end_it(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search = ["hparams_search=optuna", f"hparams_search.storage={storage}", "logger=csv", *TINY]
    first = attnlab("-m", *search, "hparams_search.n_trials=3", f"hydra.sweep.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    results = (tmp_path / "a" / "optimization_results.yaml").read_text()
    assert "best_params" in results and "n_complete: 3" in results
    assert len(jobs(tmp_path / "a")) == 3

    # The same study again: heads=3 cannot divide dim 32, so both new trials fail, and both run.
    again = ["hparams_search.n_trials=2", "backbone.heads=3", f"hydra.sweep.dir={tmp_path / 'b'}"]
    second = attnlab("-m", *search, *again, cwd=tmp_path)
    assert second.returncode == 1
    assert len(jobs(tmp_path / "b")) == 2
    study = optuna.load_study(study_name="attnlab", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.FAIL) == 2
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all("not divisible by backbone.heads=3" in t.user_attrs["error"] for t in failed)


def per_epoch(job: Path, key: str) -> list[float]:
    """``key`` at each epoch as the job's CSV logger wrote it."""
    rows = csv.DictReader((job / "csv" / "metrics.csv").open())
    return [float(r[key]) for r in rows if r.get(key)]


def test_optuna_minimises_a_min_metric_with_each_trial_at_its_best_epoch(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    three_epochs = [o for o in TINY if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=3"]
    search = ["hparams_search=optuna", "optimized_metric=val/loss", f"hparams_search.storage={storage}", "logger=csv"]
    args = ["-m", *search, *three_epochs, "hparams_search.n_trials=2", f"hydra.sweep.dir={tmp_path / 's'}"]
    result = attnlab(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="attnlab", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # from the metric alone
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert study.best_value == min(t.value for t in trials)
    for trial, job in zip(trials, jobs(tmp_path / "s")):
        losses = per_epoch(job, "val/loss")
        assert len(losses) == 3
        record = json.loads((job / "job.json").read_text())
        assert record["objective"] == {"metric": "val/loss", "mode": "min"}
        # What the trial returned is the job's best epoch in the metric's direction.
        assert trial.value == pytest.approx(min(losses)) == record["value"]
        assert json.loads((job / "metrics.json").read_text())["val/loss_best"] == pytest.approx(min(losses))


def test_a_backbone_sweep_under_a_modality_trains_the_backbones_it_names(tmp_path):
    short = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test=false"]
    args = ["-m", "modality=cnn", "backbone=tiny,small", *short, "data.batch_size=16", "logger=csv"]
    result = attnlab(*args, "trainer.enable_progress_bar=false", f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = []
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
        files = {name: compose(config_name=f"backbone/{name}").backbone for name in ("tiny", "small")}
    for job, name in zip(jobs(tmp_path), ("tiny", "small")):
        checkpoint = torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)
        backbone = checkpoint["attnlab"]["config"]["backbone"]
        assert (backbone["depth"], backbone["dim"]) == (files[name].depth, files[name].dim)
        counts.append(sum(v.numel() for k, v in checkpoint["state_dict"].items() if k.startswith("backbone.")))
    assert counts[0] != counts[1] and min(counts) > 0


SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher"


@pytest.mark.parametrize(
    ("overrides", "key", "expected"),
    [
        (["launcher=slurm"], "launcher._target_", f"{SUBMITIT}.SlurmLauncher"),
        (["launcher=slurm", "trainer.num_nodes=2"], "launcher.nodes", 2),
        (["launcher=slurm"], "launcher.timeout_min", 240),
        (["launcher=joblib"], "launcher._target_", f"{JOBLIB}.JoblibLauncher"),
        (["hparams_search=optuna"], "sweeper._target_", "hydra_plugins.attnlab_optuna.sweeper.AttnlabOptunaSweeper"),
        (["hparams_search=optuna", "hparams_search.n_trials=7"], "sweeper.n_trials", 7),
    ],
)
def test_launchers_and_search_compose_without_a_cluster(overrides, key, expected):
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    node = cfg.hydra
    for part in key.split("."):
        node = node[part]
    assert node == expected


def test_ddp_on_two_cpu_processes_writes_one_run(tmp_path):
    run_dir = tmp_path / "run"
    args = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *TINY, f"hydra.run.dir={run_dir}"]
    result = attnlab(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    assert {"val/acc", "test/acc"} <= set(json.loads((run_dir / "metrics.json").read_text()))
    assert (run_dir / "train_rank1.log").is_file()  # rank 1 ran the same job, in the same folder
    assert len(list(run_dir.glob("wandb/offline-run-*"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stray run folders


def test_experiment_presets_sweep_by_glob(tmp_path):
    # trainer=cpu is named, so each preset's trainer.max_epochs gives way, and the job's log says so.
    args = ["-m", "experiment=glob(cnn_vs_vit*)", "trainer=cpu", "trainer.fast_dev_run=true", "logger=csv"]
    result = attnlab(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert sorted(r["experiment"] for r in rows) == ["cnn_vs_vit_cnn", "cnn_vs_vit_vit"]
    assert [r["status"] for r in rows] == ["completed", "completed"]
    for job in jobs(sweep):
        preset = yaml.safe_load(next(config.CONFIG_DIR.glob(f"experiment/{job_experiment(job)}.yaml")).read_text())
        line = f"you chose trainer=cpu, so the preset's trainer.max_epochs={preset['trainer']['max_epochs']} was not"
        assert line in (job / "train.log").read_text()


def job_experiment(job: Path) -> str:
    overrides = json.loads((job / "job.json").read_text())["overrides"]
    return next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))


def test_sweep_folders_carry_microseconds():
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
        dirs = [
            compose(config_name="train", return_hydra_config=True).hydra.sweep.dir for _ in range(2)
        ]  # two sweeps composed within the same second
    assert all(re.fullmatch(r"outputs/multirun/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}", d) for d in dirs), dirs
    assert dirs[0] != dirs[1]


def test_parallel_jobs_in_joblib_workers_are_separate_wandb_runs(tmp_path):
    result = attnlab("-m", "launcher=joblib", *TINY, "seed=1,2", f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [wandb_run(job)[0] for job in jobs(tmp_path)]
    assert len({run.run_id for run in runs}) == 2
    assert {run.run_group for run in runs} == {tmp_path.name}
    assert ["seed=1" in runs[0].display_name, "seed=2" in runs[1].display_name] == [True, True]


def test_gpu_and_ddp_trainers_use_bf16_only_where_supported(monkeypatch):
    def precision(trainer: str) -> str:
        with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
            return compose(config_name="train", overrides=[f"trainer={trainer}"]).trainer.precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision("gpu") == precision("ddp") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision("gpu") == precision("ddp") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert precision("ddp") == "32-true"
