"""``attnlab-report``: one table for a whole sweep, from the files its jobs leave.

Each job folder of a multirun holds ``.hydra/overrides.yaml`` (from Hydra), ``job.json``
(status and error, :mod:`attnlab.jobs`), ``config.yaml`` (resolved) and ``metrics.json``.
The report has one row per job with the overrides that vary across the sweep, the
metrics and the status, best first in the main metric's direction (the objective the jobs
recorded, or the head's declaration: :mod:`attnlab.objective`); when ``seed`` was swept,
settings are also summarised as mean and spread over seeds. It reads only files, so it
works while a sweep is still running.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from attnlab import objective
from attnlab.errors import AttnlabError, ConfigError
from attnlab.jobs import read_status
from attnlab.objective import Objective

log = logging.getLogger(__name__)

SEED = "seed"


@dataclass
class Job:
    """What one job folder says about its job."""

    name: str
    overrides: dict[str, str]
    status: str
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    optimized_metric: str | None = None
    objective: dict[str, str] | None = None
    head: str | None = None


@dataclass
class Setting:
    """The jobs that share every varied override but the seed."""

    label: str
    values: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def _overrides(folder: Path) -> list[str]:
    status = read_status(folder) or {}
    if "overrides" in status:
        return list(status["overrides"])
    path = folder / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _config(folder: Path) -> dict[str, Any]:
    for path in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        if path.is_file():
            return yaml.safe_load(path.read_text()) or {}
    return {}


def read_job(folder: Path) -> Job:
    """The :class:`Job` recorded in ``folder``."""
    status = read_status(folder) or {}
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    state = status.get("status") or ("completed" if metrics else "running")
    config = _config(folder)
    return Job(
        name=folder.name,
        overrides=dict(_split(o) for o in _overrides(folder)),
        status=state,
        error=status.get("error"),
        metrics={k: float(v) for k, v in metrics.items()},
        optimized_metric=(status.get("objective") or {}).get("metric") or config.get("optimized_metric"),
        objective=status.get("objective"),
        head=(config.get("head") or {}).get("_target_"),
    )


def _job_key(folder: Path) -> tuple[int, str]:
    return (int(folder.name), "") if folder.name.isdigit() else (1 << 30, folder.name)


def collect(sweep: Path) -> list[Job]:
    """Every job of the sweep in ``sweep``, in job order."""
    if not sweep.is_dir():
        raise ConfigError(f"{sweep} is not a folder; pass a sweep folder such as outputs/multirun/<date>/<time>")
    folders = [p for p in sweep.iterdir() if p.is_dir() and ((p / ".hydra").is_dir() or (p / "job.json").is_file())]
    if not folders:
        raise ConfigError(f"{sweep} holds no jobs (folders with .hydra/ or job.json); is it a multirun folder?")
    return [read_job(p) for p in sorted(folders, key=_job_key)]


def varied(jobs: Sequence[Job]) -> list[str]:
    """The override keys whose value differs between jobs, in first-seen order."""
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job.overrides if k not in keys)
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def metric_columns(jobs: Sequence[Job], main: str) -> list[str]:
    """The main metric first, then every other validation and test metric."""
    names = {k for job in jobs for k in job.metrics if k.startswith(("val/", "test/"))} - {main}
    return [main, *sorted(names)]


def settings(jobs: Sequence[Job], keys: Sequence[str], metric: str) -> list[Setting]:
    """The main metric of completed jobs grouped by every varied key but ``seed``."""
    groups: dict[str, list[float]] = {}
    for job in jobs:
        value = job.metrics.get(metric)
        if job.status != "completed" or value is None or math.isnan(value):
            continue
        label = ", ".join(f"{k}={job.overrides.get(k, '')}" for k in keys if k != SEED) or "all jobs"
        groups.setdefault(label, []).append(value)
    return [Setting(label, values) for label, values in groups.items()]


@dataclass
class Report:
    """A sweep's jobs, what varies, and the metric it ranks by."""

    sweep: Path
    jobs: list[Job]
    keys: list[str]
    metric: str
    columns: list[str]
    mode: str = "max"  # the metric's direction: the rows are best first

    @property
    def seeded(self) -> bool:
        return SEED in self.keys

    @property
    def failed(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "failed"]

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per job (for CSV and Markdown)."""
        rows = []
        for job in self.jobs:
            row: dict[str, Any] = {"job": job.name}
            row.update({k: job.overrides.get(k, "") for k in self.keys})
            row.update({c: job.metrics.get(c) for c in self.columns})
            row.update(status=job.status, error=job.error or "")
            rows.append(row)
        return rows

    def settings(self) -> list[Setting]:
        return settings(self.jobs, self.keys, self.metric)


def ranking(jobs: Sequence[Job], metric: str) -> Objective:
    """``metric``'s direction: as the jobs recorded it, else as their head declares it (max if unknown)."""
    for job in jobs:
        if job.objective and job.objective.get("metric") == metric:
            return Objective(metric, job.objective["mode"])
    head = next((job.head for job in jobs if job.head), None)
    if head is None:
        return Objective(metric, "max")
    head_class = objective.head_class({"head": {"_target_": head}})
    return objective.resolve(metric, head_class, objective.ALL_STAGES, setting="--metric")


def build_report(sweep: Path, metric: str | None = None) -> Report:
    """The :class:`Report` of the sweep in ``sweep``, best job first; ``metric`` defaults to its objective."""
    jobs = collect(sweep)
    main = metric or next((j.optimized_metric for j in jobs if j.optimized_metric), None) or "val/acc"
    goal = ranking(jobs, main)
    jobs.sort(key=lambda job: goal.rank_key(job.metrics.get(main) if job.status == "completed" else None))
    return Report(sweep, jobs, varied(jobs), main, metric_columns(jobs, main), goal.mode)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return short(str(value))


def short(value: str) -> str:
    """An override value for display: long floats (Optuna's) to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if len(value) > 8 and "." in value else value


def write_csv(report: Report, path: Path) -> None:
    rows = report.rows()
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def markdown(report: Report) -> str:
    """The report as Markdown: the jobs, then (seeds swept) mean ± spread per setting."""
    rows = report.rows()
    done = sum(job.status == "completed" for job in report.jobs)
    counts = f"{len(report.jobs)} jobs: {done} completed, {len(report.failed)} failed."
    lines = [f"# Sweep {report.sweep}", "", counts, ""]
    lines += _md_table(list(rows[0]), [list(r.values()) for r in rows])
    if report.seeded:
        lines += ["", f"## {report.metric} over seeds", ""]
        table = [(s.label, s.mean, s.std, len(s.values)) for s in report.settings()]
        lines += _md_table(["setting", "mean", "std", "seeds"], table)
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> bool:
    """A PNG of the main metric per setting (mean and spread over seeds); False if nothing to plot."""
    from matplotlib.figure import Figure

    groups = report.settings()
    if not groups:
        return False
    fig = Figure(figsize=(max(4.0, 1.1 * len(groups) + 2), 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = range(len(groups))
    ax.bar(x, [g.mean for g in groups], yerr=[g.std for g in groups] if report.seeded else None, capsize=4, alpha=0.6)
    for i, group in enumerate(groups):
        ax.scatter([i] * len(group.values), group.values, color="black", s=12, zorder=3)
    ax.set_xticks(list(x), [g.label.replace(", ", "\n") for g in groups], fontsize=8)
    ax.set_ylabel(report.metric)
    spread = "mean ± std over seeds, dots: jobs" if report.seeded else "one bar per job setting"
    ax.set_title(f"{report.metric} ({spread})", fontsize=10)
    fig.savefig(path, dpi=120)
    return True


def write(report: Report) -> list[Path]:
    """Writes ``report.csv``, ``report.md`` and ``report.png`` into the sweep folder."""
    written = [report.sweep / "report.csv", report.sweep / "report.md"]
    write_csv(report, written[0])
    written[1].write_text(markdown(report))
    if plot(report, report.sweep / "report.png"):
        written.append(report.sweep / "report.png")
    return written


class SweepReport(Callback):
    """A Hydra callback: at the end of every multirun, print and write its report.

    A sweep in which a job failed still runs every job; the process then exits with
    status 1, so scripts notice.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from attnlab.console import print_report

        try:
            report = build_report(Path(config.hydra.sweep.dir))
        except AttnlabError as exc:  # e.g. a sweep of zero jobs
            log.warning("no sweep report: %s", exc)
            return
        print_report(report)
        for path in write(report):
            log.info("wrote %s", path)
        if report.failed:
            log.error("%d of %d jobs failed; see %s", len(report.failed), len(report.jobs), report.sweep / "report.md")
            raise SystemExit(1)
