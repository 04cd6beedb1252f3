"""The figures of ``report.html`` (:mod:`attnlab.report_html`), each an HTML fragment built with plotly.

Each function returns ``""`` when the runs have nothing for it (no history, no costs
measured, nothing swept, no maps drawn, no confusion matrix).
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from attnlab.report import SEED, Report, Setting, short
from attnlab.runs import Job, attention_folder, confusion_matrix

PALETTE = qualitative.Plotly + qualitative.D3[1:] + qualitative.Dark24
MAX_MAP_SETTINGS = 8
MAX_MAP_EXAMPLES = 4
CONFIG = {"displaylogo": False, "responsive": True}


def figure_div(fig: go.Figure, div_id: str, plotlyjs: bool = False) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=plotlyjs, div_id=div_id, config=CONFIG)


def arrow(metric: str, report: Report) -> str:
    return f"{metric} {'↑' if report.higher_is_better(metric) else '↓'}"


def sortable(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def _curve_metrics(report: Report, settings: list[Setting]) -> list[str]:
    keys = {k for s in settings for job in s.jobs for e in job.epochs for k in e if "/" in k}
    first = [m for m in (report.metric, "val/loss", "train/loss") if m in keys]
    return list(dict.fromkeys(first + sorted(keys)))


def _per_epoch(jobs: Sequence[Job], metric: str) -> tuple[list[int], list[list[float]]]:
    by_epoch: dict[int, list[float]] = {}
    for job in jobs:
        for record in job.epochs:
            if record.get(metric) is not None:
                by_epoch.setdefault(int(record["epoch"]), []).append(float(record[metric]))
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def curves(report: Report, colors: dict[str, str]) -> str:
    """One line per setting (mean over its seeds) and a band from min to max, per metric."""
    settings = [s for s in report.settings if any(job.epochs for job in s.jobs)]
    metrics = _curve_metrics(report, settings)
    if not metrics:
        return ""
    fig = go.Figure()
    owners: list[str] = []
    for metric in metrics:
        for setting in settings:
            epochs, values = _per_epoch(setting.jobs, metric)
            if not epochs:
                continue
            color, shown = colors[setting.label], metric == metrics[0]
            if any(len(v) > 1 for v in values):
                low, high = [min(v) for v in values], [max(v) for v in values]
                band = go.Scatter(
                    x=epochs + epochs[::-1],
                    y=high + low[::-1],
                    mode="lines",
                    fill="toself",
                    fillcolor=_rgba(color, 0.18),
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=setting.label,
                    visible=shown,
                )
                fig.add_trace(band)
                owners.append(metric)
            mean = go.Scatter(
                x=epochs,
                y=[statistics.fmean(v) for v in values],
                mode="lines+markers",
                name=setting.label,
                legendgroup=setting.label,
                line={"color": color},
                visible=shown,
                customdata=[len(v) for v in values],
                hovertemplate=f"{setting.label}<br>epoch %{{x}}: %{{y:.4f}} (mean of %{{customdata}})<extra></extra>",
            )
            fig.add_trace(mean)
            owners.append(metric)
    buttons = [
        {"label": m, "method": "update", "args": [{"visible": [o == m for o in owners]}, {"yaxis.title.text": m}]}
        for m in metrics
    ]
    fig.update_layout(
        title={"text": "Learning curves: mean over seeds, band from min to max (metric:)", "x": 0},
        updatemenus=[{"buttons": buttons, "x": 0.55, "y": 1.0, "yanchor": "bottom", "xanchor": "left"}],
        xaxis_title="epoch",
        yaxis_title=metrics[0],
        showlegend=True,
        height=460,
    )
    return "<h2>Learning curves</h2>\n" + figure_div(fig, "curves")


COSTS: list[tuple[str, str, Callable[[Job], float | None], bool]] = [
    ("parameters", "log", lambda job: job.params, False),
    (
        "attention memory (MiB)",
        "log",
        lambda job: None if job.attention_bytes is None else job.attention_bytes / 2**20,
        False,
    ),
    ("training samples/s", "linear", lambda job: job.throughput, True),
]
"""``(axis title, axis type, the job's cost, higher is better)``."""


def pareto(points: list[tuple[float, float]], cost_higher: bool, quality_higher: bool) -> list[int]:
    """Indices of the points no other point beats on both cost and quality (the Pareto front)."""

    def at_least(a: float, b: float, higher: bool) -> bool:
        return a >= b if higher else a <= b

    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            at_least(x2, x, cost_higher) and at_least(y2, y, quality_higher) and (x2, y2) != (x, y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _error_bar(setting: Setting) -> dict[str, Any]:
    return {"type": "data", "array": [setting.half_width or 0.0], "visible": setting.half_width is not None}


def quality_and_cost(report: Report, colors: dict[str, str]) -> str:
    """The metric per setting against each cost the runs measured, the Pareto front marked."""
    scored = [s for s in report.settings if s.mean is not None]
    costs = [c for c in COSTS if any(c[2](job) is not None for s in scored for job in s.jobs)]
    if not scored or not costs:
        return ""
    fig = make_subplots(rows=1, cols=len(costs), shared_yaxes=True, subplot_titles=[c[0] for c in costs])
    for col, (title, axis, cost, cost_higher) in enumerate(costs, start=1):
        points, labels = [], []
        for setting in scored:
            measured = [cost(job) for job in setting.jobs if job.status == "completed" and cost(job) is not None]
            if not measured:
                continue
            x = statistics.fmean(measured)
            points.append((x, setting.mean))
            labels.append(setting.label)
            fig.add_trace(
                go.Scatter(
                    x=[x],
                    y=[setting.mean],
                    mode="markers",
                    name=setting.label,
                    legendgroup=setting.label,
                    marker={"color": colors[setting.label], "size": 10},
                    showlegend=col == 1,
                    error_y=_error_bar(setting),
                    hovertemplate=f"{setting.label}<br>{title}: %{{x:.4g}}<br>{report.metric}: %{{y:.4f}}"
                    "<extra></extra>",
                ),
                row=1,
                col=col,
            )
        front = sorted(points[i] for i in pareto(points, cost_higher, report.mode == "max"))
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in front],
                y=[p[1] for p in front],
                mode="lines+markers",
                name="Pareto front",
                legendgroup="pareto",
                showlegend=col == 1,
                line={"color": "black", "dash": "dot", "shape": "hv"},
                marker={"symbol": "circle-open", "size": 18, "color": "black", "line": {"width": 2}},
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(type=axis, title_text=title, row=1, col=col)
    fig.update_yaxes(title_text=arrow(report.metric, report), row=1, col=1)
    fig.update_layout(title={"text": "Quality against cost (mean and 95% interval per setting)", "x": 0}, height=440)
    return "<h2>Quality against cost</h2>\n" + figure_div(fig, "cost")


def parallel(report: Report) -> str:
    """Parallel coordinates: one line per completed job over the swept settings and the metric."""
    keys = [k for k in report.keys if k != SEED]
    jobs = [job for job in report.jobs if job.status == "completed" and job.metrics.get(report.metric) is not None]
    if not keys or len(jobs) < 2:
        return ""
    dimensions = []
    for key in keys:
        values = [job.overrides.get(key, "") for job in jobs]
        numbers = [sortable(v) for v in values]
        if all(isinstance(n, float) for n in numbers):
            dimensions.append({"label": key, "values": numbers})
        else:
            names = sorted(set(values))
            ticks = [short(n) for n in names]
            ranks = [names.index(v) for v in values]
            dimensions.append({"label": key, "values": ranks, "tickvals": list(range(len(names))), "ticktext": ticks})
    scores = [job.metrics[report.metric] for job in jobs]
    dimensions.append({"label": arrow(report.metric, report), "values": scores})
    line = {"color": scores, "colorscale": "Viridis", "reversescale": report.mode == "min", "showscale": True}
    fig = go.Figure(go.Parcoords(line=line, dimensions=dimensions))
    fig.update_layout(title={"text": "Swept settings (one line per job, colour: the metric)", "x": 0}, height=420)
    return "<h2>Parallel coordinates</h2>\n" + figure_div(fig, "parallel")


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def attention_maps(report: Report) -> str:
    """The same validation examples' maps (the modality's view, rollout), one column per setting."""
    columns: list[tuple[str, Path]] = []
    for setting in report.settings:
        folder = next((f for job in setting.jobs if (f := attention_folder(job.folder)) is not None), None)
        if folder is not None:
            columns.append((setting.label, folder))
    if not columns:
        return ""
    columns = columns[:MAX_MAP_SETTINGS]
    parts = ["<h2>Attention maps</h2>", f"<p>From {html.escape(columns[0][1].name)} of each setting's first job.</p>"]
    for kind in ("view", "rollout"):
        if not any((folder / f"example0_{kind}.png").is_file() for _, folder in columns):
            continue
        head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in columns)
        rows = []
        for i in range(MAX_MAP_EXAMPLES):
            cells = [_map_cell(folder, i, kind) for _, folder in columns]
            if any(cells):
                rows.append(f"<tr><th>example {i}</th>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
        parts.append(f'<h3>{kind}</h3><table class="maps"><tr><th></th>{head}</tr>{"".join(rows)}</table>')
    return "\n".join(parts)


def _map_cell(folder: Path, index: int, kind: str) -> str:
    path = folder / f"example{index}_{kind}.png"
    if not path.is_file():
        return ""
    try:
        caption = json.loads((folder / "captions.json").read_text()).get(f"example{index}", "")
    except (OSError, ValueError):
        caption = ""
    return f"<figure>{_image(path)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def confusion_matrices(report: Report) -> str:
    """Each setting's test confusion matrix, counts summed over its jobs, colour: share of the true class."""
    figures = []
    for i, setting in enumerate(report.settings):
        read = [m for job in setting.jobs if (m := confusion_matrix(job.folder)) is not None]
        if not read:
            continue
        names = read[0][0]
        counts = [
            [sum(m[1][r][c] for m in read if m[0] == names) for c in range(len(names))] for r in range(len(names))
        ]
        shares = [[v / max(sum(row), 1.0) for v in row] for row in counts]
        heat = go.Heatmap(
            z=shares,
            x=names,
            y=names,
            text=[[f"{v:.0f}" for v in row] for row in counts],
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        )
        fig = go.Figure(heat)
        side = min(900, 260 + 22 * len(names))
        fig.update_layout(
            title={"text": f"{setting.label} ({len(read)} jobs)", "font": {"size": 12}},
            width=side,
            height=side,
            xaxis_title="predicted",
            yaxis_title="true",
            yaxis_autorange="reversed",
            margin={"t": 50},
        )
        figures.append(figure_div(fig, f"confusion{i}"))
    if not figures:
        return ""
    return '<h2>Test confusion matrices</h2>\n<div class="grid">' + "\n".join(figures) + "</div>"
