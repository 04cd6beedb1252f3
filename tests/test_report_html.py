"""report.html in a real headless browser: Debian's Chromium, driven through the DevTools protocol (Playwright).

The set-up installs Chromium with apt-get when it is missing (as root) and skips, saying
why, where it cannot; no browser is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attnlab.report import build_report, write
from helpers import fake_job, open_in_browser

SHOWN = """() => {
  const cells = (column, block) => [...column.querySelectorAll('.column-block')]
    .filter(b => (b.id === 'header') === block).flatMap(b => [...b.querySelectorAll('.column-cell')])
    .map(c => c.textContent);
  const columns = [...document.querySelectorAll('#jobs .y-column')];
  return {
    table: Object.fromEntries(columns.map(c => [cells(c, true)[0], cells(c, false)])),
    curves: [...document.querySelectorAll('#curves .legend .traces')].map(t => t.textContent),
    figures: [...document.querySelectorAll('.js-plotly-plot')].map(d => d.id),
    maps: document.querySelectorAll('table.maps img').length,
    text: document.body.innerText,
  };
}"""

CLASSES = ["cat", "dog"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Three settings x two seeds, as a sweep leaves them: one job failed, one still running."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    jobs = [
        ("1", "1", "completed", 0.70),
        ("1", "2", "completed", 0.74),
        ("2", "1", "completed", 0.80),
        ("2", "2", "completed", 0.84),
        ("4", "1", "running", None),
        ("4", "2", "failed", None),
    ]
    for i, (heads, seed, status, acc) in enumerate(jobs):
        metrics = None if acc is None else {"val/acc": acc, "test/acc": acc - 0.02, "test/baseline/majority_acc": 0.5}
        epochs = (
            []
            if status == "failed"
            else [{"val/acc": 0.5, "train/loss": 1.0}, {"val/acc": acc or 0.6, "train/loss": 0.5}]
        )
        fake_job(
            tmp_path / str(i),
            [f"backbone.heads={heads}", f"seed={seed}"],
            status,
            metrics,
            epochs=epochs,
            error="backbone.dim=32 is not divisible by backbone.heads=4" if status == "failed" else None,
            params=1000 * int(heads),
            attention_bytes=2**20 * int(heads),
            throughput=[100.0 / int(heads)],
            confusion=(CLASSES, [[5, 1], [2, 4]]) if acc is not None else None,
            maps=2 if acc is not None else 0,
        )
    (tmp_path / "multirun.yaml").write_text("{}\n")
    return tmp_path


@pytest.fixture(scope="module")
def shown(sweep) -> dict:
    written = write(build_report(sweep))
    assert sweep / "report.html" in written
    return open_in_browser(sweep / "report.html", SHOWN)


def test_the_page_loads_offline_with_a_row_per_job_and_a_curve_per_setting(shown):
    assert shown["errors"] == []
    assert shown["requests"] == []  # plotly.js and the images are inside the file
    result = shown["result"]
    assert result["table"]["job"] == ["2", "3", "0", "1", "4", "5"]  # one row per job, best setting first
    assert result["curves"] == ["backbone.heads=2", "backbone.heads=1", "backbone.heads=4"]
    assert {"jobs", "curves", "cost", "parallel", "confusion0", "confusion1"} <= set(result["figures"])
    assert result["maps"] == 2 * 2  # two examples of the two settings that drew maps
    assert "job 5 failed: backbone.dim=32 is not divisible by backbone.heads=4" in result["text"]
    assert "example 0: true a, predicted b" in result["text"]


def test_the_table_shows_the_ranking_the_interval_and_the_baseline(shown):
    table = {name.replace(" ", ""): cells for name, cells in shown["result"]["table"].items()}  # headers wrap
    assert list(table)[:8] == [
        "rank",
        "job",
        "backbone.heads",
        "seed",
        "val/acc↑",
        "mean±95%CI",
        "test/acc↑",
        "test/baseline/majority_acc↑",
    ]
    assert table["rank"] == ["1", "1", "2", "2", "", ""]
    # two seeds, 0.80 and 0.84: t(0.975, df=1) = tan(0.475 pi) = 12.706, s / sqrt(2) = 0.02
    assert table["mean±95%CI"][:2] == ["0.8200 ± 0.2541 (n=2)"] * 2
    assert table["test/baseline/majority_acc↑"][:4] == ["0.5000"] * 4
    assert table["status"] == ["completed"] * 4 + ["running", "failed"]
    assert table["params"][:4] == ["2.0k", "2.0k", "1.0k", "1.0k"]
