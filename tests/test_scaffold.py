"""``attnlab-plugins new``: the generated package installs, is discovered, passes its checks and trains.

The end-to-end test installs the generated package (``pip install -e --no-deps
--no-build-isolation``) into a throwaway environment on top of this one (see
:func:`helpers.overlay_environment`), so no other test sees it, and uninstalls it in a
``finally``; entry points of a fresh install are seen by new processes, so everything
after the install runs in subprocesses of that environment.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attnlab import contract, plugin_cli, plugins, scaffold
from attnlab.errors import ConfigError
from conftest import BIN, FAST
from helpers import overlay_environment

NAME = "scaffold_probe"
DIST = "attnlab-scaffold-probe"


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "COLUMNS": "300"}
    return subprocess.Popen([*args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen, timeout: int = 300) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return finished(start(*args, cwd=cwd), timeout)


EXPERIMENT = {"sequence": "long", "set": "large", "grid": "fine"}


@pytest.mark.parametrize("kind", sorted(scaffold.KINDS))
def test_the_package_has_every_file_and_no_placeholder_left(kind, tmp_path):
    written = scaffold.scaffold("sensor_rows", tmp_path / "pkg", kind)
    rel = sorted(p.relative_to(tmp_path / "pkg").as_posix() for p in written)
    views = ["src/attnlab_sensor_rows/views.py"] if kind == "set" else []
    assert rel == sorted(
        [
            "README.md",
            "pyproject.toml",
            "src/attnlab_sensor_rows/__init__.py",
            "src/attnlab_sensor_rows/conf/data/sensor_rows_toy.yaml",
            f"src/attnlab_sensor_rows/conf/experiment/sensor_rows_{EXPERIMENT[kind]}.yaml",
            "src/attnlab_sensor_rows/conf/modality/sensor_rows.yaml",
            "src/attnlab_sensor_rows/data.py",
            "src/attnlab_sensor_rows/frontend.py",
            "tests/test_contract.py",
            *views,
        ]
    )
    text = {p.name: p.read_text() for p in written}
    assert not any("{{" in t for t in text.values())
    assert 'sensor_rows = "attnlab_sensor_rows:plugin"' in text["pyproject.toml"]
    assert 'name = "attnlab-sensor-rows"' in text["pyproject.toml"]
    assert 'run_checks("sensor_rows")' in text["test_contract.py"]
    assert "class SensorRowsFrontend" in text["frontend.py"] and "class SensorRowsToy" in text["data.py"]
    assert "_target_: attnlab.data.DataModule" in text["sensor_rows_toy.yaml"]
    modality = text["sensor_rows.yaml"]
    expected = {
        "sequence": ["channels: ${from_data:channels}"],  # the defaults: 1-D sin-cos positions, mean pooling
        "set": ["num_keys: ${from_data:num_keys}", "attention_defaults:", "positions: none", "cls_token: true"],
        "grid": ["size: ${from_data:size}", "attention_defaults:", "cls_token: true"],
    }[kind]
    assert all(line in modality for line in expected), modality
    assert "\nbackbone:" not in modality  # a modality suggests (attention_defaults); it never writes backbone keys


@pytest.mark.parametrize("kind", sorted(scaffold.KINDS))
def test_the_generated_code_passes_ruff(kind, tmp_path):
    scaffold.scaffold("lint_me", tmp_path / "pkg", kind)
    for args in (["check"], ["format", "--check"]):
        result = run(str(BIN / "ruff"), *args, str(tmp_path / "pkg"), cwd=tmp_path / "pkg")
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def discoverable(tmp_path):
    """Makes a generated package discoverable in this process, as if installed (no pip)."""
    added: list[str] = []

    def install(name: str, pkg: Path) -> None:
        info = tmp_path / "site" / f"attnlab_{name}-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: attnlab-{name}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[attnlab.plugins]\n{name} = attnlab_{name}:plugin\n")
        added.extend([str(tmp_path / "site"), str(pkg / "src"), str(pkg / "tests")])
        sys.path[:0] = added
        plugins.discover.cache_clear()

    yield install
    for path in added:
        sys.path.remove(path)
    for module in [m for m in sys.modules if m.startswith("attnlab_kind_") or m == "test_contract"]:
        del sys.modules[module]
    plugins.discover.cache_clear()


@pytest.mark.parametrize("kind", sorted(scaffold.KINDS))
def test_each_kind_meets_the_contract_and_its_own_tests(kind, tmp_path, discoverable):
    name = f"kind_{kind}"
    scaffold.scaffold(name, tmp_path / "pkg", kind)
    discoverable(name, tmp_path / "pkg")
    contract.run_checks(name)
    generated = importlib.import_module("test_contract")
    tests = [getattr(generated, t) for t in dir(generated) if t.startswith("test_") and "contract" not in t]
    assert len(tests) == 1
    tests[0]()  # the kind's own front-end test: positions, order, padding


def test_an_unknown_kind_lists_the_kinds(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown kind of tokens 'tree'; choose one of sequence, set, grid"):
        scaffold.scaffold("fresh", tmp_path / "pkg", "tree")
    assert not (tmp_path / "pkg").exists()


def test_an_unknown_placeholder_is_a_template_bug():
    with pytest.raises(KeyError, match=r"\{\{nope\}\} has no value"):
        scaffold.render("a {{nope}} b", {"name": "x"})
    assert scaffold.render("${from_data:x} {{name}}", {"name": "y"}) == "${from_data:x} y"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad-Name", "invalid plugin name 'Bad-Name': use lowercase letters"),
        ("9lives", "invalid plugin name '9lives'"),
        ("class", "invalid plugin name 'class'"),
        ("vision", "a plugin named 'vision' is already installed (attnlab 0.1.0"),
    ],
)
def test_names_that_cannot_work_are_refused(name, message, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        scaffold.scaffold(name, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_a_folder_that_is_not_empty_is_left_alone(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match="exists and is not an empty folder; choose another with --dir"):
        scaffold.scaffold("fresh", tmp_path / "pkg")
    assert [p.name for p in (tmp_path / "pkg").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new", "Bad", "--kind", "set"], "attnlab-plugins: error: invalid plugin name 'Bad'"),
        (
            ["new", "fresh"],
            "attnlab-plugins: error: choose what kind of tokens the modality makes: --kind sequence|set|grid",
        ),
        (["new", "fresh", "--kind", "tree"], "attnlab-plugins: error: argument --kind: invalid choice: 'tree'"),
        (["new"], "attnlab-plugins: error: the following arguments are required: name"),
        (
            ["check", "nope"],
            "attnlab-plugins: error: unknown plugin 'nope'; installed plugins: cnn, speech, text, vision",
        ),
        (["frobnicate"], "attnlab-plugins: error: argument {list,new,check}: invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        plugin_cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err


def test_the_console_script_prints_no_traceback(tmp_path):
    result = run(str(BIN / "attnlab-plugins"), "new", "Bad-Name", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("attnlab-plugins: error: invalid plugin name") and "Traceback" not in result.stderr


def test_new_plugin_installs_lists_checks_trains_and_tests(tmp_path):
    pkg = tmp_path / DIST
    result = run(str(BIN / "attnlab-plugins"), "new", NAME, "--kind", "sequence", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"pip install -e {DIST}" in result.stdout and (pkg / "pyproject.toml").is_file()
    env = overlay_environment(tmp_path / "env")
    pip = [str(env / "python"), "-m", "pip"]
    installed = run(*pip, "install", "-q", "-e", str(pkg), "--no-deps", "--no-build-isolation", cwd=tmp_path)
    procs: list[subprocess.Popen] = []
    try:
        assert installed.returncode == 0, installed.stderr
        # Four independent commands of the installed plugin, side by side.
        run_dir = tmp_path / "run"
        args = [f"modality={NAME}", *FAST, "logger=csv", f"hydra.run.dir={run_dir}"]
        procs = [
            start(str(env / "attnlab-plugins"), "list", cwd=tmp_path),
            start(str(env / "attnlab-plugins"), "check", NAME, cwd=tmp_path),
            start(str(env / "attnlab"), *args, cwd=tmp_path),
            start(str(env / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=pkg),
        ]
        listed, checked, trained, tested = (finished(p) for p in procs)
        row = next(line for line in listed.stdout.splitlines() if line.startswith(f"│ {NAME} "))
        assert " ok " in row and f"{DIST} 0.1.0 (attnlab_{NAME}:plugin)" in row, listed.stdout

        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.startswith(f"ok   {NAME}: {len(contract.CHECKS)} checks passed")

        assert trained.returncode == 0, trained.stderr[-3000:]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert {"train/loss", "val/acc", "test/acc"} <= set(metrics)

        assert tested.returncode == 0, tested.stdout[-3000:]
        assert "2 passed" in tested.stdout
    finally:
        for proc in procs:  # a failed assertion leaves no command running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        removed = run(*pip, "uninstall", "-y", "-q", DIST, cwd=tmp_path)
        assert removed.returncode == 0, removed.stderr
    assert NAME not in run(str(env / "attnlab-plugins"), cwd=tmp_path).stdout
