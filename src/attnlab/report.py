"""``attnlab-report``: a sweep's jobs ranked by one metric, from the files its jobs leave.

The jobs are read by :mod:`attnlab.runs` (files only, so a sweep that is still running can
be reported). Jobs that differ only in ``seed`` form one setting; settings are ranked by
the mean of the metric over their seeds, in the metric's direction, with a 95%
t-interval. Equal means share a rank (``1=``) and the report says so: a saturated metric
(every setting at 0.9825) cannot tell settings apart, and ``--metric`` ranks by another.
Outputs: ``report.csv``, ``report.md``, ``report.png`` and ``report.html``
(:mod:`attnlab.report_html`).
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from attnlab.errors import AttnlabError, ConfigError
from attnlab.runs import Job, Mode, collect, direction

log = logging.getLogger(__name__)

SEED = "seed"
CONFIDENCE = 0.95


def interval(values: Sequence[float]) -> float | None:
    """Half the width of the 95% t-interval of the mean of ``values`` (None for fewer than two)."""
    if len(values) < 2:
        return None
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


@dataclass
class Setting:
    """The jobs that share every varied override but the seed, and the metric over their seeds."""

    label: str
    jobs: list[Job]
    values: list[float]
    rank: int | None = None
    tied: bool = False

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def half_width(self) -> float | None:
        return interval(self.values)

    @property
    def rank_label(self) -> str:
        return "" if self.rank is None else f"{self.rank}{'=' if self.tied else ''}"


def counterpart(metric: str) -> str:
    """The test metric that goes with a validation metric (``val/acc`` -> ``test/acc``)."""
    return "test/" + metric.removeprefix("val/") if metric.startswith("val/") else metric


def baseline_of(key: str, metrics: set[str]) -> str | None:
    """The metric a ``<split>/baseline/<name>_<metric>`` key is a baseline for, if it is reported."""
    split, kind, rest = (key.split("/", 2) + ["", ""])[:3]
    if kind != "baseline":
        return None
    matches = [m for m in metrics if m.startswith(f"{split}/") and rest.endswith("_" + m.split("/", 1)[1])]
    return max(matches, key=len) if matches else None


def below_baseline(metrics: Mapping[str, float], higher_is_better: Callable[[str], bool]) -> list[tuple[str, str]]:
    """``(metric, baseline)`` pairs of ``metrics`` in which the metric is worse than its baseline.

    A result below a majority-class guess or a linear model on the same split
    (:mod:`attnlab.baselines`) is worth a flag wherever it is shown: the final table
    (:func:`attnlab.console.print_results`) and the sweep report (:class:`Report`) both ask here.

    Args:
        metrics: one run's metrics, baselines included (``test/baseline/linear_acc``).
        higher_is_better: the direction of a metric key (``test/acc``: True).
    """
    names = set(metrics)
    flagged = []
    for baseline in sorted(names):
        metric = baseline_of(baseline, names)
        if metric is None or not (_usable(metrics[metric]) and _usable(metrics[baseline])):
            continue
        value, bar = metrics[metric], metrics[baseline]
        if value < bar if higher_is_better(metric) else value > bar:
            flagged.append((metric, baseline))
    return flagged


def metric_columns(jobs: Sequence[Job], main: str) -> list[str]:
    """The main metric, its test counterpart, then every other ``val/*`` and ``test/*`` metric, each
    followed by its baselines."""
    names = {k for job in jobs for k in job.metrics if k.startswith(("val/", "test/"))}
    baselines = {k: baseline_of(k, names) for k in names}
    plain = sorted(k for k in names if baselines[k] is None and "/baseline/" not in k)
    order = [main, *([counterpart(main)] if counterpart(main) in names else [])]
    order += [k for k in plain if k not in order]
    columns: list[str] = []
    for metric in order:
        columns += [metric, *sorted(k for k, of in baselines.items() if of == metric)]
    return columns + sorted(k for k in names if "/baseline/" in k and baselines[k] is None)


def varied(jobs: Sequence[Job]) -> list[str]:
    """The override keys whose value differs between jobs, in first-seen order."""
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job.overrides if k not in keys)
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def _better(a: float, b: float, mode: Mode) -> bool:
    return a > b if mode == "max" else a < b


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def rank(settings: list[Setting], mode: Mode) -> list[Setting]:
    """``settings`` best first, with competition ranks: equal means share a rank (``tied``)."""
    scored = sorted((s for s in settings if s.mean is not None), key=lambda s: -s.mean if mode == "max" else s.mean)
    for s in scored:
        s.rank = 1 + sum(_better(o.mean, s.mean, mode) and not _same(o.mean, s.mean) for o in scored)
        s.tied = sum(_same(o.mean, s.mean) for o in scored) > 1
    return scored + [s for s in settings if s.mean is None]


def group(jobs: Sequence[Job], keys: Sequence[str], metric: str) -> list[Setting]:
    """Jobs grouped by every varied key but ``seed``; values: the metric of completed jobs."""
    groups: dict[str, Setting] = {}
    for job in jobs:
        label = ", ".join(f"{k}={job.overrides.get(k, '')}" for k in keys if k != SEED)
        label = label or (job.name if len(jobs) == 1 else "all jobs")
        setting = groups.setdefault(label, Setting(label, [], []))
        setting.jobs.append(job)
        value = job.metrics.get(metric)
        if job.status == "completed" and _usable(value):
            setting.values.append(value)
    return list(groups.values())


@dataclass
class Report:
    """A sweep's jobs, what varies, the metric it ranks by, and its settings ranked."""

    sweep: Path
    jobs: list[Job]
    keys: list[str]
    metric: str
    mode: Mode
    columns: list[str]
    settings: list[Setting]

    @property
    def seeded(self) -> bool:
        return SEED in self.keys

    @property
    def failed(self) -> list[Job]:
        return [job for job in self.jobs if job.status == "failed"]

    def setting_of(self, job: Job) -> Setting:
        return next(s for s in self.settings if job in s.jobs)

    def higher_is_better(self, metric: str) -> bool:
        """The direction of a reported metric: the run's objective's, else the head's declaration or the name."""
        if metric == self.metric:
            return self.mode == "max"
        head = next((job.head for job in self.jobs if job.head is not None), None)
        return direction(metric.replace("/baseline/", "/"), head) == "max"

    def below_baseline(self, job: Job) -> list[tuple[str, str]]:
        """The job's ``(metric, baseline)`` pairs in which the metric is worse than its baseline."""
        return below_baseline(job.metrics, self.higher_is_better)

    def baseline_notes(self) -> list[str]:
        """One sentence per job and metric below its baseline (a majority guess, a linear model)."""
        return [
            f"job {job.name}: {metric} {job.metrics[metric]:.4f} is below its baseline {base} {job.metrics[base]:.4f}"
            for job in self.jobs
            for metric, base in self.below_baseline(job)
        ]

    def ties(self) -> list[str]:
        """One sentence per rank that several settings share: they cannot be told apart by the metric."""
        notes = []
        for r in sorted({s.rank for s in self.settings if s.tied}):
            tied = [s for s in self.settings if s.rank == r]
            alternative = counterpart(self.metric) if counterpart(self.metric) != self.metric else "another metric"
            notes.append(
                f"{len(tied)} settings share rank {r} on {self.metric} ({tied[0].mean:.4g}); "
                f"this metric cannot tell them apart: compare {alternative} or rank with --metric"
            )
        return notes

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per job in job order (CSV and Markdown)."""
        rows = []
        for job in self.jobs:
            setting = self.setting_of(job)
            row: dict[str, Any] = {"job": job.name}
            row.update({k: job.overrides.get(k, "") for k in self.keys})
            row.update({c: job.metrics.get(c) for c in self.columns})
            row.update(
                rank=setting.rank_label,
                setting_mean=setting.mean,
                setting_ci95=setting.half_width,
                seconds=job.seconds,
                params=job.params,
                attention_peak_bytes=job.attention_bytes,
                samples_per_sec=job.throughput,
                below_baseline="; ".join(f"{m} < {b}" for m, b in self.below_baseline(job)),
                status=job.status,
                error=job.error or "",
            )
            rows.append(row)
        return rows


def build_report(path: Path, metric: str | None = None, mode: Mode | None = None) -> Report:
    """The :class:`Report` of the sweep (or single run) in ``path``.

    Args:
        metric: rank by this metric (default: the metric the runs optimised).
        mode: its direction (default: the recorded one, else the head's declaration or the name:
            :func:`attnlab.runs.direction`).
    """
    jobs = collect(path)
    known = sorted({k for job in jobs for k in job.metrics})
    if metric is not None and metric not in known:
        raise ConfigError(f"--metric {metric} is reported by no job in {path}; known: {', '.join(known) or 'none yet'}")
    recorded = next((job.objective for job in jobs if job.objective is not None), None)
    main = metric or (recorded[0] if recorded else "val/acc")
    if mode is None:
        head = next((job.head for job in jobs if job.head is not None), None)
        mode = recorded[1] if recorded is not None and recorded[0] == main else direction(main, head)
    keys = varied(jobs)
    return Report(path, jobs, keys, main, mode, metric_columns(jobs, main), rank(group(jobs, keys, main), mode))


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
    """The report as Markdown: the settings ranked (mean and 95% interval), ties, then every job."""
    done = sum(job.status == "completed" for job in report.jobs)
    counts = f"{len(report.jobs)} jobs: {done} completed, {len(report.failed)} failed."
    arrow = "higher" if report.mode == "max" else "lower"
    lines = [f"# Sweep {report.sweep}", "", counts, f"Ranked by {report.metric} ({arrow} is better).", ""]
    lines += _md_table(
        ["rank", "setting", "mean", "95% CI ±", "seeds" if report.seeded else "jobs"],
        [(s.rank_label, s.label, s.mean, s.half_width, len(s.values)) for s in report.settings],
    )
    notes = report.ties() + report.baseline_notes()
    lines += [""] + [f"- {note}" for note in notes] + ([""] if notes else [])
    lines += ["## Jobs", ""]
    rows = report.rows()
    lines += _md_table(list(rows[0]), [list(r.values()) for r in rows])
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> bool:
    """A PNG of the metric per setting (mean and 95% interval over seeds); False if nothing to plot."""
    from matplotlib.figure import Figure

    groups = [s for s in report.settings if s.values]
    if not groups:
        return False
    fig = Figure(figsize=(max(4.0, 1.1 * len(groups) + 2), 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = range(len(groups))
    errors = [s.half_width or 0.0 for s in groups]
    ax.bar(x, [g.mean for g in groups], yerr=errors if report.seeded else None, capsize=4, alpha=0.6)
    for i, group_ in enumerate(groups):
        ax.scatter([i] * len(group_.values), group_.values, color="black", s=12, zorder=3)
    ax.set_xticks(list(x), [f"#{g.rank_label} " + g.label.replace(", ", "\n") for g in groups], fontsize=8)
    ax.set_ylabel(report.metric)
    spread = "mean and 95% interval over seeds, dots: jobs" if report.seeded else "one bar per setting"
    ax.set_title(f"{report.metric} ({spread}), best first", fontsize=10)
    fig.savefig(path, dpi=120)
    return True


def write(report: Report, html: bool = True) -> list[Path]:
    """Writes ``report.csv``, ``report.md``, ``report.png`` and ``report.html`` into the sweep folder."""
    written = [report.sweep / "report.csv", report.sweep / "report.md"]
    write_csv(report, written[0])
    written[1].write_text(markdown(report))
    if plot(report, report.sweep / "report.png"):
        written.append(report.sweep / "report.png")
    if html:
        from attnlab.report_html import write_html

        written.append(write_html(report, report.sweep / "report.html"))
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
