"""What runs and sweeps show in the terminal: the config tree, the results, a sweep's report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from attnlab.report import Report, below_baseline, short
from attnlab.runs import direction

_console = Console(stderr=False, soft_wrap=True)

_ORDER = ("data", "frontend", "backbone", "head", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths")


def _add(tree: Tree, node: Any) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(value, Mapping) and value:
                _add(tree.add(f"[bold]{key}[/]"), value)
            else:
                tree.add(f"{key}: [cyan]{value!r}[/]" if isinstance(value, str) else f"{key}: [cyan]{value}[/]")
    else:
        tree.add(repr(node))


def print_config_tree(config: Mapping[str, Any]) -> None:
    """The composed config as a tree, the model's parts first."""
    tree = Tree("[bold]config[/]")
    keys = [k for k in _ORDER if k in config] + [k for k in config if k not in _ORDER]
    for key in keys:
        value = config[key]
        if isinstance(value, Mapping):
            _add(tree.add(f"[bold]{key}[/]"), value)
        else:
            tree.add(f"{key}: [cyan]{value}[/]")
    _console.print(tree)


def print_results(title: str, metrics: Mapping[str, float], run_dir: Path, head: str | None = None) -> None:
    """The final metrics as a table, then the run folder.

    A metric worse than one of its baselines (``test/acc`` under ``test/baseline/linear_acc``)
    is flagged in red, in its direction (``head``: the run's head target, which declares it).
    """
    flagged = below_baseline(metrics, lambda metric: direction(metric, head) == "max")
    notes: dict[str, list[str]] = {}
    for metric, baseline in flagged:
        notes.setdefault(metric, []).append(f"below {baseline.rsplit('/', 1)[-1]} ({metrics[baseline]:.4f})")
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if notes:
        table.add_column("baseline")
    for key in sorted(metrics):
        row = [key, f"{metrics[key]:.4f}"]
        if key in notes:
            row = [f"[red]{key}[/]", f"[red]{row[1]}[/]", f"[red]{'; '.join(notes[key])}[/]"]
        table.add_row(*row)
    _console.print(table)
    _console.print(f"run folder: {run_dir}")


def print_report(report: Report) -> None:
    """A sweep's jobs as a table (best setting first), failed jobs' errors, ties, then the settings."""
    table = Table(title=f"sweep {report.sweep}")
    table.add_column("rank", justify="right")
    table.add_column("job", justify="right")
    for key in [*report.keys, *report.columns]:
        table.add_column(key, justify="right" if key in report.columns else "left", min_width=min(len(key), 14))
    table.add_column("status")
    styles = {"completed": "green", "failed": "red", "running": "yellow"}
    for setting in report.settings:
        for job in setting.jobs:
            metrics = [_cell(job.metrics.get(c)) for c in report.columns]
            status = f"[{styles.get(job.status, 'magenta')}]{job.status}[/]"
            overrides = [escape(short(job.overrides.get(k, ""))) for k in report.keys]
            table.add_row(setting.rank_label, job.name, *overrides, *metrics, status)
    console = Console(soft_wrap=True, width=max(_console.width, 160)) if not _console.is_terminal else _console
    console.print(table)
    for job in report.failed:
        console.print(f"[red]job {job.name} failed[/]: {escape(job.error or 'no error recorded')}")
    for note in report.ties():
        console.print(f"[yellow]tie[/]: {escape(note)}")
    for note in report.baseline_notes():
        console.print(f"[red]below baseline[/]: {escape(note)}")
    if report.seeded:
        direction = "higher" if report.mode == "max" else "lower"
        summary = Table(title=f"{report.metric} over seeds ({direction} is better)")
        for column in ("rank", "setting", "mean", "95% CI ±", "seeds"):
            summary.add_column(column, justify="left" if column == "setting" else "right")
        for s in report.settings:
            half = "" if s.half_width is None else f"{s.half_width:.4f}"
            summary.add_row(s.rank_label, escape(s.label), _cell(s.mean), half, str(len(s.values)))
        console.print(summary)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
