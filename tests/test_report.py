"""The sweep report's ranking, intervals, ties, objective, baselines and running jobs, on job folders made by hand."""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import pytest

from attnlab.report import build_report, write
from attnlab.report_plots import pareto
from attnlab.runs import direction
from conftest import BIN
from helpers import fake_job


def t_quantile_df1(p: float) -> float:
    """Student's t with one degree of freedom is the Cauchy distribution: its quantile is tan(pi (p - 1/2))."""
    return math.tan(math.pi * (p - 0.5))


def sweep_of(root: Path, values: dict[tuple[str, str], float], **kwargs) -> Path:
    for i, ((heads, seed), value) in enumerate(values.items()):
        metrics = {"val/acc": value, "test/acc": value - 0.1}
        fake_job(root / str(i), [f"backbone.heads={heads}", f"seed={seed}"], "completed", metrics, **kwargs)
    (root / "multirun.yaml").write_text("{}\n")
    return root


def test_settings_are_ranked_by_their_mean_with_a_95_percent_t_interval(tmp_path):
    sweep = sweep_of(tmp_path, {("1", "1"): 0.5, ("1", "2"): 0.7, ("2", "1"): 0.8, ("2", "2"): 0.9})
    report = build_report(sweep)
    assert [s.label for s in report.settings] == ["backbone.heads=2", "backbone.heads=1"]
    best = report.settings[0]
    assert best.mean == pytest.approx(0.85) and best.rank_label == "1"
    # two seeds: half width = t(0.975, df=1) * s / sqrt(2), s = |0.9 - 0.8| / sqrt(2)
    assert best.half_width == pytest.approx(t_quantile_df1(0.975) * (0.1 / math.sqrt(2)) / math.sqrt(2))
    assert report.ties() == []


def test_equal_means_share_a_rank_and_the_report_says_so(tmp_path):
    for i, (heads, val, test) in enumerate([(1, 0.9825, 0.95), (2, 0.9825, 0.97), (4, 0.97, 0.96)]):
        metrics = {"val/acc": val, "test/acc": test}
        fake_job(tmp_path / str(i), [f"backbone.heads={heads}", "seed=1"], "completed", metrics)
    report = build_report(tmp_path)
    assert [s.rank_label for s in report.settings] == ["1=", "1=", "3"]
    (note,) = report.ties()
    assert "2 settings share rank 1 on val/acc (0.9825)" in note and "compare test/acc" in note
    assert report.columns[1] == "test/acc"  # the test result next to the ranking metric
    by_test = build_report(tmp_path, metric="test/acc")
    assert [(s.label, s.rank_label) for s in by_test.settings] == [
        ("backbone.heads=2", "1"),
        ("backbone.heads=4", "2"),
        ("backbone.heads=1", "3"),
    ]


def test_a_loss_ranks_lowest_first(tmp_path):
    for i, loss in enumerate([0.3, 0.1, 0.2]):
        fake_job(tmp_path / str(i), [f"seed={i}", f"optimizer.lr={i}"], "completed", {"val/loss": loss, "val/acc": 0.5})
    report = build_report(tmp_path, metric="val/loss")
    assert report.mode == "min"
    assert [s.values for s in report.settings] == [[0.1], [0.2], [0.3]]
    assert build_report(tmp_path, metric="val/loss", mode="max").settings[0].values == [0.3]


@pytest.mark.parametrize(
    ("metric", "mode"),
    [("val/acc", "max"), ("val/f1", "max"), ("val/loss", "min"), ("val/cer", "min"), ("test/wer", "min")],
)
def test_the_fallback_direction_comes_from_the_metric_name(metric, mode):
    assert direction(metric) == mode


def test_the_objective_recorded_in_job_json_wins_over_the_name(tmp_path):
    objective = {"metric": "val/score", "mode": "min"}
    for i, score in enumerate([0.4, 0.2]):
        fake_job(tmp_path / str(i), [f"optimizer.lr={i}"], "completed", {"val/score": score}, objective=objective)
    report = build_report(tmp_path)
    assert (report.metric, report.mode) == ("val/score", "min")
    assert report.settings[0].values == [0.2]


def test_baselines_stand_next_to_their_metric(tmp_path):
    metrics = {"val/acc": 0.9, "test/acc": 0.88, "test/loss": 0.3, "test/baseline/majority_acc": 0.1}
    metrics |= {"test/baseline/linear_acc": 0.6, "val/loss": 0.2}
    fake_job(tmp_path / "0", ["seed=1"], "completed", metrics)
    columns = build_report(tmp_path).columns
    assert columns[:4] == ["val/acc", "test/acc", "test/baseline/linear_acc", "test/baseline/majority_acc"]


def test_a_running_job_shows_its_latest_epoch_and_is_not_ranked(tmp_path):
    fake_job(tmp_path / "0", ["seed=1"], "completed", {"val/acc": 0.6}, epochs=[{"val/acc": 0.6}])
    fake_job(tmp_path / "1", ["seed=2"], "running", None, epochs=[{"val/acc": 0.3}, {"val/acc": 0.45}])
    report = build_report(tmp_path)
    running = report.jobs[1]
    assert running.status == "running" and running.metrics["val/acc"] == 0.45
    assert report.settings[0].values == [0.6]  # seeds of one setting: only the completed job counts


def test_a_single_run_folder_is_a_report_of_one_run(tmp_path):
    fake_job(tmp_path / "run", ["backbone=small"], "completed", {"val/acc": 0.7}, epochs=[{"val/acc": 0.7}])
    report = build_report(tmp_path / "run")
    assert [job.name for job in report.jobs] == ["run"] and report.settings[0].label == "run"
    written = write(report)
    assert {p.name for p in written} == {"report.csv", "report.md", "report.png", "report.html"}


def test_time_parameters_memory_and_throughput_reach_the_csv(tmp_path):
    fake_job(tmp_path / "0", ["seed=1"], "completed", {"val/acc": 0.5}, throughput=[10.0, 30.0, 20.0], params=1234)
    write(build_report(tmp_path))
    (row,) = csv.DictReader((tmp_path / "report.csv").open())
    assert float(row["seconds"]) == 90.0  # job.json: 10:00:00 to 10:01:30
    assert row["params"] == "1234" and float(row["samples_per_sec"]) == 20.0  # the median
    assert row["attention_peak_bytes"] == str(2**20)


def test_an_unknown_metric_is_one_line(tmp_path):
    fake_job(tmp_path / "0", ["seed=1"], "completed", {"val/acc": 0.5})
    result = subprocess.run(
        [str(BIN / "attnlab-report"), str(tmp_path), "--metric", "val/accc"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"attnlab: error: --metric val/accc is reported by no job in {tmp_path}; known: val/acc"
    )


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes():
    # (cost, quality): lower cost and higher quality are better
    points = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.9), (4.0, 0.8)]
    assert pareto(points, cost_higher=False, quality_higher=True) == [0, 1, 3]
    # throughput: higher is better
    assert pareto(points, cost_higher=True, quality_higher=True) == [3]
