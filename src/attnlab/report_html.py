"""``report.html``: a sweep (or one run) on one self-contained page, built with plotly.

plotly.js is embedded once (``include_plotlyjs=True`` on the first figure) and images are
inlined, so the file opens with no network: from a laptop, a cluster's shared disk or an
e-mail attachment. Sections, each left out when the runs have nothing for it:

- the jobs, best setting first, sortable with the table's "sort by" menu: the varied
  settings, the ranking metric, its setting's mean and 95% interval over seeds, the test
  metric and its baselines, the other metrics, status and error, time, parameters,
  attention memory and throughput;
- learning curves per setting (mean over seeds, band: min to max), one metric at a time;
- quality against cost (parameters, attention memory, throughput), the Pareto front marked;
- parallel coordinates over the swept settings;
- the same validation examples' attention maps, one column per setting;
- the test confusion matrices per setting (summed over seeds).
"""

from __future__ import annotations

import html
import math
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from attnlab.report import Report, Setting, short
from attnlab.report_plots import (
    PALETTE,
    arrow,
    attention_maps,
    confusion_matrices,
    curves,
    figure_div,
    parallel,
    quality_and_cost,
    sortable,
)
from attnlab.runs import Job

STATUS_COLORS = {"completed": "#e6f4ea", "failed": "#fce8e6", "running": "#fef7e0"}

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #202124; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
.note {{ background: #fef7e0; padding: .4em .8em; border-left: 4px solid #f9ab00; margin: .4em 0; }}
.fail {{ background: #fce8e6; border-left-color: #d93025; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
table.maps {{ border-collapse: collapse; }} table.maps td, table.maps th {{ padding: 4px; vertical-align: top; }}
table.maps img {{ width: 240px; }} figure {{ margin: 0; }} figcaption {{ font-size: .8em; color: #555; }}
</style></head><body>
{body}
</body></html>
"""


def write_html(report: Report, path: Path) -> Path:
    """Writes the page for ``report`` to ``path``."""
    colors = {s.label: PALETTE[i % len(PALETTE)] for i, s in enumerate(report.settings)}
    sections = [
        header(report),
        jobs_table(report),
        curves(report, colors),
        quality_and_cost(report, colors),
        parallel(report),
        attention_maps(report),
        confusion_matrices(report),
    ]
    title = f"attnlab report: {report.sweep.name}"
    path.write_text(PAGE.format(title=html.escape(title), body="\n".join(s for s in sections if s)))
    return path


def header(report: Report) -> str:
    done = sum(job.status == "completed" for job in report.jobs)
    running = sum(job.status == "running" for job in report.jobs)
    better = "higher" if report.mode == "max" else "lower"
    parts = [
        f"<h1>{html.escape(str(report.sweep))}</h1>",
        f"<p>{len(report.jobs)} jobs: {done} completed, {len(report.failed)} failed, {running} running. "
        f"Ranked by <b>{html.escape(report.metric)}</b> ({better} is better); settings that differ only in the "
        f"seed are one setting, with the mean and a 95% t-interval over seeds. "
        f"Written {datetime.now().isoformat(timespec='seconds')}.</p>",
    ]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in report.ties()]
    parts += [f'<p class="note fail">below baseline: {html.escape(note)}</p>' for note in report.baseline_notes()]
    if running:
        parts.append('<p class="note">Running jobs show their latest epoch and are not ranked yet.</p>')
    for job in report.failed:
        parts.append(f'<p class="note fail">job {html.escape(job.name)} failed: {html.escape(job.error or "")}</p>')
    return "\n".join(parts)


def _num(value: float | None, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _count(n: float | None) -> str:
    if n is None:
        return ""
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _mib(n: float | None) -> str:
    return "" if n is None else f"{n / 2**20:.2f} MiB"


def _columns(report: Report, jobs: list[Job]) -> list[tuple[str, list[str], list[Any], bool]]:
    """``(title, shown values, sort keys, best first is descending)`` per column of the jobs table."""
    settings = [report.setting_of(job) for job in jobs]
    cols: list[tuple[str, list[str], list[Any], bool]] = [
        ("rank", [s.rank_label for s in settings], [s.rank for s in settings], False),
        ("job", [job.name for job in jobs], [_job_number(job) for job in jobs], False),
    ]
    for key in report.keys:
        values = [short(job.overrides.get(key, "")) for job in jobs]
        cols.append((key, values, [sortable(v) for v in values], False))
    for i, metric in enumerate(report.columns):
        values = [job.metrics.get(metric) for job in jobs]
        keys = [None if v is None or math.isnan(v) else v for v in values]
        shown = [_num(v) + _below(report, job, metric) for v, job in zip(values, jobs)]
        cols.append((arrow(metric, report), shown, keys, report.higher_is_better(metric)))
        if i == 0:
            shown = [_interval(s) for s in settings]
            cols.append(("mean ± 95% CI", shown, [s.mean for s in settings], report.mode == "max"))
    cols += [
        ("status", [job.status for job in jobs], [job.status for job in jobs], False),
        (
            "error",
            ["<br>".join(textwrap.wrap(job.error or "", 48)) for job in jobs],
            [job.error for job in jobs],
            False,
        ),
        ("time", [_duration(job.seconds) for job in jobs], [job.seconds for job in jobs], False),
        ("params", [_count(job.params) for job in jobs], [job.params for job in jobs], False),
        ("attention memory", [_mib(job.attention_bytes) for job in jobs], [job.attention_bytes for job in jobs], False),
        ("samples/s", [_count(job.throughput) for job in jobs], [job.throughput for job in jobs], True),
    ]
    return cols


def _below(report: Report, job: Job, metric: str) -> str:
    """`` ⚠ below <baseline>`` when the job's ``metric`` is worse than one of its baselines."""
    names = [base.rsplit("/", 1)[-1] for m, base in report.below_baseline(job) if m == metric]
    return f" ⚠ below {', '.join(names)}" if names else ""


def _job_number(job: Job) -> Any:
    return int(job.name) if job.name.isdigit() else job.name


def _interval(setting: Setting) -> str:
    if setting.mean is None:
        return ""
    half = setting.half_width
    n = len(setting.values)
    return f"{setting.mean:.4f} ± {half:.4f} (n={n})" if half is not None else f"{setting.mean:.4f} (n={n})"


def _order(keys: list[Any], descending: bool) -> list[int]:
    """Row order by ``keys``, missing values last whatever the direction."""
    present = [i for i, k in enumerate(keys) if k is not None]
    by_type = sorted(present, key=lambda i: (isinstance(keys[i], str), keys[i]), reverse=descending)
    if descending:  # keep numbers before strings
        by_type = [i for i in by_type if not isinstance(keys[i], str)] + [
            i for i in by_type if isinstance(keys[i], str)
        ]
    return by_type + [i for i, k in enumerate(keys) if k is None]


def jobs_table(report: Report) -> str:
    """The jobs as a plotly table, best setting first, with a "sort by" menu over its columns."""
    jobs = [job for setting in report.settings for job in setting.jobs]
    cols = _columns(report, jobs)
    fills = [[STATUS_COLORS.get(job.status, "white") for job in jobs] for _ in cols]

    def cells(order: list[int]) -> tuple[list[list[str]], list[list[str]]]:
        return [[c[1][i] for i in order] for c in cols], [[f[i] for i in order] for f in fills]

    values, colors = cells(list(range(len(jobs))))
    table = go.Table(
        header={"values": [f"<b>{html.escape(c[0])}</b>" for c in cols], "fill_color": "#e8eaed", "align": "left"},
        cells={"values": values, "fill_color": colors, "align": "left", "height": 24},
        columnwidth=[max(48, min(200, 8 * max(len(c[0]), *(len(v) for v in c[1][:50])))) for c in cols],
    )
    buttons = []
    for title, _, keys, descending in cols:
        if title == "error" or all(k is None for k in keys):
            continue
        sorted_values, sorted_colors = cells(_order(keys, descending))
        args = [{"cells.values": [sorted_values], "cells.fill.color": [sorted_colors]}, [0]]
        buttons.append({"label": title, "method": "restyle", "args": args})
    fig = go.Figure(table)
    fig.update_layout(
        title={"text": "Jobs, best setting first (sort by:)", "x": 0},
        updatemenus=[{"buttons": buttons, "x": 0.32, "y": 1.0, "yanchor": "bottom", "xanchor": "left"}],
        height=min(900, 150 + 34 * len(jobs)),  # cells wrap on narrow screens; the table scrolls past 900 px
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return "<h2>Jobs</h2>\n" + figure_div(fig, "jobs", plotlyjs=True)
