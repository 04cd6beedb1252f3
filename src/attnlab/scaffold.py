"""``attnlab-plugins new NAME --kind KIND``: write a complete, working modality plugin package.

What the package holds depends on the kind of tokens the modality makes (:data:`KINDS`):

- ``sequence``: ordered, variable-length (a time series): frames grouped into tokens,
  ``lengths`` and padding, 1-D positions, mean pooling; a ``<name>_long`` preset with
  truncated attention.
- ``set``: unordered elements (a table's columns, an object's parts): one token per
  element from its key and value, no positions, a CLS token, the keys' names on the
  attention maps; a ``<name>_large`` preset.
- ``grid``: a fixed 2-D grid (an image, a board): patches as tokens with (row, column)
  positions, a CLS token; a ``<name>_fine`` preset with smaller patches.

Each is rendered from the templates in ``attnlab/templates/plugin``: a pyproject with the
``attnlab.plugins`` entry point, a dataset source with generated toy data, a front-end,
Hydra configs, a contract test and a README. Placeholders are ``{{key}}``, so the
templates keep Hydra's ``${...}`` as it is.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import attnlab
from attnlab import plugins
from attnlab.errors import ConfigError

TEMPLATE_DIR = "templates/plugin"


@dataclass(frozen=True)
class Kind:
    """A kind of tokens a modality makes, and what its scaffold says about it."""

    description: str
    experiment: str
    positions_note: str
    extra: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "sequence": Kind(
        "variable-length multichannel sequences, frames grouped into tokens; toy waves",
        "long",
        ", 1-D positions",
    ),
    "set": Kind(
        "unordered sets, one token per element (key embedding + value), no positions, CLS; toy rows",
        "large",
        ", no positions: a set",
        ("views",),
    ),
    "grid": Kind(
        "2-D grids, one token per patch with (row, column) positions, CLS; toy patterns", "fine", ", positions (T, 2)"
    ),
}
"""The kinds of tokens ``--kind`` offers."""


def layout(kind: str) -> dict[str, str]:
    """Where each file of a ``kind`` package comes from: path in the package → template."""
    found = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        "src/{module}/__init__.py": "__init__.py.tmpl",
        "src/{module}/frontend.py": f"frontend_{kind}.py.tmpl",
        "src/{module}/data.py": f"data_{kind}.py.tmpl",
        "src/{module}/conf/modality/{name}.yaml": f"modality_{kind}.yaml.tmpl",
        "src/{module}/conf/data/{name}_toy.yaml": f"data_{kind}.yaml.tmpl",
        f"src/{{module}}/conf/experiment/{{name}}_{KINDS[kind].experiment}.yaml": f"experiment_{kind}.yaml.tmpl",
        "tests/test_contract.py": f"test_contract_{kind}.py.tmpl",
    }
    for extra in KINDS[kind].extra:
        found[f"src/{{module}}/{extra}.py"] = f"{extra}_{kind}.py.tmpl"
    return found


def check_kind(kind: str) -> None:
    """Raises ConfigError naming the kinds when ``kind`` is not one of them."""
    if kind not in KINDS:
        raise ConfigError(f"unknown kind of tokens {kind!r}; choose one of {', '.join(KINDS)}")


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def check_name(name: str) -> None:
    """A plugin name: lowercase identifier, not a keyword, not taken by an installed plugin.

    Raises:
        ConfigError: the name cannot be used, with the reason.
    """
    if not plugins.NAME_PATTERN.fullmatch(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and '_', starting with a letter "
            "(it becomes the Python package attnlab_<name>)"
        )
    source = plugins.registered().get(name)
    if source is not None:
        raise ConfigError(f"a plugin named {name!r} is already installed ({source}); choose another name")


def values(name: str, kind: str = "sequence") -> dict[str, str]:
    """The placeholders of the templates for plugin ``name`` of ``kind``."""
    return {
        "name": name,
        "module": f"attnlab_{name}",
        "dist": f"attnlab-{name.replace('_', '-')}",
        "Camel": "".join(part.capitalize() for part in name.split("_")),
        "attnlab_version": attnlab.__version__,
        "kind": kind,
        "description": KINDS[kind].description,
        "positions_note": KINDS[kind].positions_note,
    }


def render(template: str, mapping: dict[str, str]) -> str:
    """``template`` with each ``{{key}}`` replaced; an unknown key is a bug in the template."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in mapping:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value; known: {sorted(mapping)}")
        return mapping[key]

    return _PLACEHOLDER.sub(value, template)


def default_dir(name: str) -> Path:
    """Where ``attnlab-plugins new <name>`` writes without ``--dir``: ``./attnlab-<name>``."""
    return Path(values(name)["dist"])


def scaffold(name: str, target: Path | None = None, kind: str = "sequence") -> list[Path]:
    """Write the plugin package for ``name``, whose tokens are of ``kind``, into ``target``.

    Returns:
        The files written.

    Raises:
        ConfigError: an invalid or taken name, an unknown kind, or a ``target`` that is a
            file or a folder that is not empty.
    """
    check_name(name)
    check_kind(kind)
    target = Path(target) if target is not None else default_dir(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} exists and is not an empty folder; choose another with --dir")
    mapping = values(name, kind)
    templates = files(attnlab).joinpath(TEMPLATE_DIR)
    written = []
    for dest, source in layout(kind).items():
        path = target / dest.format(**mapping)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(templates.joinpath(source).read_text(encoding="utf-8"), mapping), encoding="utf-8")
        written.append(path)
    return written
