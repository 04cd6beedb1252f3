"""attnlab installs like any library: its wheel, in a fresh environment, runs every command.

The wheel is built from a copy of the checkout and installed into a throwaway virtual
environment that reuses this environment's installed dependencies (its ``site-packages``
folders go on the new one's path after its own, through a ``.pth`` file; this checkout's
editable attnlab is a path hook that is not carried over). A plugin package made by
``attnlab-plugins new`` is then installed next to it the way a user would, with pip
resolving its ``attnlab>=0.1.0`` against the wheel-installed attnlab and no index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

PLUGIN = "wheelprobe"
TINY = ["logger=csv", "data.batch_size=16", "backbone.dim=32", "backbone.depth=1", "trainer.enable_progress_bar=false"]
ONE_BATCH = ["trainer.max_epochs=1", *(f"trainer.limit_{s}_batches=1" for s in ("train", "val", "test"))]


@dataclass(frozen=True)
class Env:
    root: Path
    bin: Path
    wheel: Path
    tmp: Path

    def run(self, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return self.start(*args).communicate_result(timeout)

    def start(self, *args: str) -> _Proc:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(WANDB_MODE="offline", COLUMNS="300", VIRTUAL_ENV=str(self.root))
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return _Proc(args, self.tmp, env)


class _Proc:
    def __init__(self, args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> None:
        self.args = args
        self.popen = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def communicate_result(self, timeout: int = 300) -> subprocess.CompletedProcess:
        out, err = self.popen.communicate(timeout=timeout)
        return subprocess.CompletedProcess(self.args, self.popen.returncode, out, err)


def dependency_dirs() -> list[str]:
    """This interpreter's ``site-packages`` folders: where attnlab's dependencies are installed."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def build_wheel(tmp: Path) -> Path:
    """The wheel of a clean copy of the checkout (an in-tree build could pick up stale files)."""
    source = tmp / "checkout"
    skip = shutil.ignore_patterns(".venv", ".git", "outputs", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, source, ignore=skip)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run([*pip, "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("attnlab-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def env(tmp_path_factory, wheel) -> Env:
    """A fresh virtual environment with attnlab installed from its wheel, and a plugin next to it."""
    tmp = tmp_path_factory.mktemp("install")
    root = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    (site,) = (root / "lib").glob("python3*/site-packages")
    (site / "zz_attnlab_test_deps.pth").write_text(f"import sys; sys.path.extend({dependency_dirs()!r})\n")
    made = Env(root, root / "bin", wheel, tmp)
    # --ignore-installed: this checkout's editable attnlab is visible as a distribution; leave it alone.
    pip = ["python", "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check"]
    installed = made.run(*pip, "--no-deps", "--ignore-installed", str(wheel))
    assert installed.returncode == 0, installed.stderr[-3000:]
    scaffolded = made.run("attnlab-plugins", "new", PLUGIN, "--kind", "sequence", "--dir", str(tmp / "plugin"))
    assert scaffolded.returncode == 0, scaffolded.stderr
    plugin = made.run(*pip, "--no-build-isolation", str(tmp / "plugin"))  # resolves attnlab>=0.1.0: the wheel's
    assert plugin.returncode == 0, plugin.stderr[-3000:]
    return made


def test_the_wheel_holds_every_module_config_and_template(wheel):
    """Nothing is left behind: a package added to the tree but not to pyproject would fail here."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"attnlab/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")}
    expected |= {f"{p.relative_to(ROOT / 'src')}" for p in (ROOT / "src").rglob("*") if p.suffix in (".py", ".tmpl")}
    for folder in (ROOT / "plugins").iterdir():
        files = [p for p in folder.rglob("*") if p.suffix in (".py", ".yaml")]
        expected |= {f"attnlab_{folder.name}/{p.relative_to(folder)}" for p in files}
    assert sorted(expected - names) == []


def test_the_installed_package_reads_its_own_configs(env):
    script = "import attnlab, attnlab.config as c; print(attnlab.__file__); print(c.config_dir())"
    result = env.run("python", "-c", script)
    assert result.returncode == 0, result.stderr
    module, conf = map(Path, result.stdout.split())
    assert module.is_relative_to(env.root) and conf == module.parent / "conf"
    assert sorted(p.relative_to(conf) for p in conf.rglob("*.yaml")) == sorted(
        p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml")
    )


def test_every_command_runs_from_the_wheel_with_a_plugin_next_to_it(env):
    sweep = env.tmp / "sweep"
    listing = env.start("attnlab-plugins")
    helped = env.start("attnlab", "--help")
    trained = env.start(
        "attnlab", "-m", f"modality=vision,{PLUGIN}", *TINY, *ONE_BATCH, f"hydra.sweep.dir={sweep}"
    ).communicate_result()
    assert trained.returncode == 0, trained.stderr[-3000:]
    for job in ("0", "1"):
        assert {"val/acc", "test/acc"} <= set(json.loads((sweep / job / "metrics.json").read_text()))

    rows = listing.communicate_result()
    assert rows.returncode == 0, rows.stderr
    lines = rows.stdout.splitlines()
    for name, source in [("vision", "attnlab 0.1.0"), (PLUGIN, f"attnlab-{PLUGIN} 0.1.0")]:
        assert any(line.startswith(f"│ {name} ") and " ok " in line and source in line for line in lines), rows.stdout

    groups = helped.communicate_result()
    assert groups.returncode == 0, groups.stderr
    assert f"modality: cnn, speech, text, vision, {PLUGIN}" in groups.stdout.splitlines()

    evaluation = env.tmp / "eval"
    ckpt = sweep / "0" / "checkpoints" / "best.ckpt"
    args = [f"ckpt_path={ckpt}", "logger=csv", "trainer.limit_test_batches=2", f"hydra.run.dir={evaluation}"]
    evaluated = env.start("attnlab-eval", *args)
    reported = env.run("attnlab-report", str(sweep), "--no-files")
    assert reported.returncode == 0, reported.stderr
    assert "completed" in reported.stdout and PLUGIN in reported.stdout
    result = evaluated.communicate_result()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in json.loads((evaluation / "metrics.json").read_text())
