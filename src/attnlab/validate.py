"""Checking a composed config against the signatures of what it builds, before any work.

Every ``_target_`` node names a callable. Its keys must be parameters of that callable
(unless it takes ``**kwargs``), so a misspelt key, or a key the chosen class has no use
for, is one line naming the settings it does take. Each value must fit its parameter's
annotation; the annotations are the contract, and constructors say their ranges with
``typing.Annotated`` and :mod:`annotated_types`::

    from typing import Annotated, Literal
    from annotated_types import Ge, Interval

    def __init__(
        self,
        batch_size: Annotated[int, Ge(1)] = 64,
        val_fraction: Annotated[float, Interval(ge=0, lt=1)] = 0.1,
        pooling: Literal["auto", "cls", "mean"] = "auto",
        window: Annotated[int, Ge(1)] | None = None,
    ) -> None: ...

pydantic checks each value strictly, as the config holds it: ``abc`` is not a number,
``true`` is not a count and ``2.0`` is not an integer, while ``1`` is a fine float and a
list a fine tuple. A parameter whose annotation pydantic cannot read is not checked.
Values that come from interpolations which resolve only later (``${from_data:...}``,
``${hydra:...}``) are skipped; the run checks its config again once they resolve.

What annotations cannot say, a third-party constructor checks itself (AdamW: the learning
rate must be >= 0): :func:`rejections` turns the ``ValueError`` a library raises about its
own arguments into one line naming the node. Torch optimizers, which a run builds only
when training starts, are built once here on a stand-in parameter for that reason.
Errors raised in attnlab's own code are never translated: they are bugs.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import json
import tempfile
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    GrammarParseError,
    InterpolationKeyError,
    InterpolationResolutionError,
    InterpolationToMissingValueError,
    MissingMandatoryValue,
    UnsupportedInterpolationType,
)
from pydantic import ConfigDict, TypeAdapter, ValidationError

from attnlab.describe import describe, show
from attnlab.errors import ConfigError, find_user_error

HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
"""Keys Hydra's ``instantiate`` reads itself; they are not the target's parameters."""

OWN_PACKAGES = ("attnlab",)
"""Module prefixes of attnlab's own code (the core and plugins, ``attnlab_<name>``): a
``ValueError`` raised there is a bug, never a rejected setting."""

_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)


@dataclass(frozen=True)
class WritableFolder:
    """Marks a path the run writes into: ``Annotated[str, WritableFolder()]``. Besides its type,
    the folder must be creatable and writable (:func:`check_writable`)."""


class Later(Exception):
    """A value that can only be resolved later (it depends on the data or the job)."""


# --- checking a config --------------------------------------------------------------


def check_config(cfg: DictConfig, skip: Sequence[str] = ("hydra",)) -> None:
    """Checks every ``_target_`` node in ``cfg`` (top-level keys in ``skip`` left out).

    Raises:
        ConfigError: the first key or value that does not fit, in one line.
    """
    for key, child in _children(cfg):
        if key not in skip:
            _walk(str(key), child)


def check_target(path: str, node: DictConfig) -> None:
    """Checks one ``_target_`` node at ``path`` (e.g. ``backbone``) and the targets inside it."""
    target_name = read(node, "_target_", f"{path}._target_")
    if not isinstance(target_name, str):
        raise ConfigError(f"{path}._target_={show(target_name)} must be the dotted name of a class or function")
    target = locate(target_name, f"{path}._target_")
    params, hints = signature(target)
    keys = [str(k) for k in node if k not in HYDRA_KEYS]
    partial = node.get("_partial_", False) is True
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    by_name = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    for key in keys:
        if key not in by_name and not takes_kwargs:
            raise ConfigError(_unknown_key(path, target_name, key, list(by_name)))
    if not partial:
        positional = len(node.get("_args_") or [])
        given = set(keys) | {n for n, p in list(params.items())[:positional] if p.kind is not p.KEYWORD_ONLY}
        for name, p in by_name.items():
            if p.default is inspect.Parameter.empty and name not in given:
                raise ConfigError(f"{path} ({target_name}) needs {name}; set {path}.{name}=<value>")

    for key in keys:
        child_path = f"{path}.{key}"
        child = _container(node, key)
        if child is not None and _holds_target(child):
            _walk(child_path, child)
            continue
        if key not in by_name:
            continue  # taken by **kwargs: nothing to check it against
        try:
            value = read(node, key, child_path)
        except Later:
            continue
        if _builds_objects(value):  # an interpolated `_target_` node: checked where it is written
            continue
        check_value(child_path, value, hints.get(key, Any), target_name, raw=_raw(node, key))
    if partial and isinstance(target, type):
        _probe_partial(path, target_name, target, node)


def check_settings(
    cfg: DictConfig, settings: type, components: Sequence[str] = (), skip: Sequence[str] = ("hydra",)
) -> None:
    """Checks the top-level scalars of ``cfg`` against the fields of the dataclass ``settings``.

    Every top-level key must be a field of ``settings``, one of ``components`` (the nodes
    that are built into objects, checked by :func:`check_config`) or in ``skip``.
    """
    if not is_dataclass(settings):
        raise TypeError(f"{settings!r} is not a dataclass")
    hints = typing.get_type_hints(settings, include_extras=True)
    names = [f.name for f in fields(settings)]
    for key in cfg:
        key = str(key)
        if key in components or key in skip:
            continue
        if key not in names:
            raise ConfigError(_unknown_key(None, "a run", key, [*names, *components]))
        try:
            value = read(cfg, key, key)
        except Later:
            continue
        check_value(key, value, hints[key], None, raw=_raw(cfg, key))


def check_value(path: str, value: Any, annotation: Any, owner: str | None = None, raw: str | None = None) -> None:
    """Checks one plain value (as the config holds it, resolved) against ``annotation``.

    Args:
        path: the key, e.g. ``data.batch_size``.
        value: the value: None, bool, int, float, str, or lists and dicts of these.
        annotation: the parameter's annotation (``typing.Annotated`` constraints included).
        owner: what takes the value, for the message (e.g. ``my_plugin.DataModule``).
        raw: the value as written when it was an interpolation, for the message.
    """
    adapter = _adapter(annotation)
    if adapter is None:
        return
    try:
        adapter.validate_json(json.dumps(value, default=str))
    except ValidationError as exc:
        shown = show(value) if raw is None else f"{raw} (= {show(value)})"
        where = _where(exc.errors(), value)
        taker = f" ({owner})" if owner else ""
        raise ConfigError(f"{path}={shown}{where}: must be {describe(annotation)}{taker}") from None
    if isinstance(value, str) and any(isinstance(m, WritableFolder) for m in _metadata(annotation)):
        check_writable(path, Path(value))


def check_writable(key: str, folder: Path) -> None:
    """``folder`` can be created (if it is not there) and written; nothing is created.

    The nearest folder that exists must take a new file (a temporary one, removed at once),
    so a read-only place, a file in the way or a broken link fail here in one line.
    """
    folder = folder.expanduser().absolute()
    existing = folder
    try:
        while not existing.exists():
            if existing.is_symlink():
                raise ConfigError(f"{key}={folder} cannot be created: {existing} is a broken or looping link")
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"{key}={folder} cannot be created: {existing} is a file, not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{key}={folder} cannot be written ({exc.strerror or exc} in {existing}); choose a folder you can write to"
        ) from None


def _metadata(annotation: Any) -> Iterator[Any]:
    """The ``Annotated`` metadata of ``annotation`` and of the members of a union (``X | None``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        yield from typing.get_args(annotation)[1:]
    elif typing.get_origin(annotation) in (typing.Union, UnionType):
        for member in typing.get_args(annotation):
            yield from _metadata(member)


# --- the third party's own checks ---------------------------------------------------


@contextmanager
def rejections(path: str, target: str) -> Iterator[None]:
    """Within the block, a library's own ``ValueError`` about its settings becomes one line.

    Use it around building a third-party ``_target_`` (the Lightning ``Trainer``, a
    callback, an optimizer). Lightning's ``MisconfigurationException`` counts as a
    ``ValueError`` here. Errors raised in attnlab's code, and any other exception, pass
    through unchanged.
    """
    try:
        yield
    except Exception as exc:
        rejected = _rejection(exc)
        if rejected is None:
            raise
        reason = " ".join(str(rejected).split()) or type(rejected).__name__
        raise ConfigError(f"{path} ({target}) rejected its settings: {reason}") from exc


def _rejection(exc: BaseException) -> BaseException | None:
    if find_user_error(exc) is not None:
        return None
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if _is_rejection(cause):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _is_rejection(exc: BaseException) -> bool:
    """A ``ValueError`` raised by library code about its arguments: past the caller's own frames,
    no frame of attnlab's code (a library calling back into attnlab, which raised, is a bug)."""
    kinds = tuple(t for t in (ValueError, _misconfiguration()) if t is not None)
    if not isinstance(exc, kinds):
        return False
    modules = []
    tb = exc.__traceback__
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    while modules and modules[0].startswith(OWN_PACKAGES):
        modules.pop(0)  # the caller: the code that builds the target
    if not modules or any(m.startswith(OWN_PACKAGES) for m in modules):
        return False
    return not modules[-1].startswith(("omegaconf", "hydra", "pydantic"))


def _misconfiguration() -> type | None:
    """Lightning's ``MisconfigurationException``, if Lightning is already loaded."""
    import sys

    module = sys.modules.get("lightning_fabric.utilities.exceptions")
    return getattr(module, "MisconfigurationException", None)


def _probe_partial(path: str, target_name: str, target: type, node: DictConfig) -> None:
    """Builds a torch optimizer once on a stand-in parameter, so it checks its own settings now."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not issubclass(target, torch.optim.Optimizer):
        return
    try:
        kwargs = {str(k): read(node, k, f"{path}.{k}") for k in node if k not in HYDRA_KEYS}
    except Later:
        return
    try:
        with rejections(path, target_name):
            target([torch.nn.Parameter(torch.zeros(1))], **kwargs)
    except ConfigError:
        raise
    except Exception:
        return  # not about its settings (e.g. the stand-in's device): building it for real reports it


# --- targets and their signatures ---------------------------------------------------


def locate(name: str, path: str = "_target_") -> Any:
    """The object a dotted ``_target_`` name refers to.

    A name that does not exist is the user's error; a module that exists but fails to
    import is a bug and raises as it is.
    """
    parts = name.split(".")
    if not all(parts):
        raise ConfigError(f"{path}={name} is not a dotted name like package.module.Class")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # not a module: an attribute of a shorter one, or nothing
            raise
        for i, attr in enumerate(parts[split:], start=split):
            if not hasattr(obj, attr):
                where = ".".join(parts[:i])
                raise ConfigError(f"{path}={name} does not exist: {where} has no {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise ConfigError(f"{path}={name} does not exist: there is no module {parts[0]!r}")


@functools.cache
def signature(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    """The parameters of ``target`` and their annotations (``Any`` where one cannot be read).

    For a class, the parameters of its constructor.
    """
    try:
        params = dict(inspect.signature(target).parameters)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check against
        return {"args": _VAR_POSITIONAL, "kwargs": _VAR_KEYWORD}, {}
    function = target
    if isinstance(target, type):
        function = target.__init__ if target.__init__ is not object.__init__ else target.__new__
    return params, _hints(function, params)


_VAR_POSITIONAL = inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)
_VAR_KEYWORD = inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)


def _hints(function: Any, params: Mapping[str, inspect.Parameter]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:  # an annotation names something not importable at run time
        pass
    namespace = getattr(inspect.unwrap(function), "__globals__", {})
    hints: dict[str, Any] = {}
    for name, p in params.items():
        annotation = p.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307 - the target's own annotation
            except Exception:
                continue
        if annotation is not inspect.Parameter.empty:
            hints[name] = annotation
    return hints


def _adapter(annotation: Any) -> TypeAdapter | None:
    try:
        return _cached_adapter(annotation)
    except TypeError:  # unhashable annotation
        return _build_adapter(annotation)


@functools.cache
def _cached_adapter(annotation: Any) -> TypeAdapter | None:
    return _build_adapter(annotation)


def _build_adapter(annotation: Any) -> TypeAdapter | None:
    if (
        annotation is Any
        or annotation is object
        or annotation is inspect.Parameter.empty
        or isinstance(annotation, str)
    ):
        return None
    try:
        adapter = TypeAdapter(annotation, config=_STRICT)
    except Exception:  # pydantic cannot read it (e.g. a Protocol): the value is not checked
        return None
    return adapter if adapter.pydantic_complete else None  # a name it cannot resolve: not checked either


# --- reading values -----------------------------------------------------------------


def _walk(path: str, node: Any) -> None:
    if isinstance(node, DictConfig) and "_target_" in node:
        check_target(path, node)
        return
    for key, child in _children(node):
        _walk(f"{path}.{key}" if isinstance(node, DictConfig) else f"{path}[{key}]", child)


def _holds_target(node: Any) -> bool:
    return (isinstance(node, DictConfig) and "_target_" in node) or any(_holds_target(c) for _, c in _children(node))


def _builds_objects(value: Any) -> bool:
    """A plain value holding a ``_target_`` mapping, which Hydra builds into an object."""
    if isinstance(value, dict):
        return "_target_" in value or any(_builds_objects(v) for v in value.values())
    return isinstance(value, list) and any(_builds_objects(v) for v in value)


def _children(node: Any) -> Iterator[tuple[Any, DictConfig | ListConfig]]:
    """The containers directly inside ``node`` (interpolations and missing values left out)."""
    if not isinstance(node, (DictConfig, ListConfig)) or node._is_none() or node._is_missing():
        return
    for key in node if isinstance(node, DictConfig) else range(len(node)):
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        child = node[key]
        if isinstance(child, (DictConfig, ListConfig)):
            yield key, child


def _container(node: DictConfig, key: Any) -> DictConfig | ListConfig | None:
    """``node[key]`` when it is a plain (not interpolated, not missing) container."""
    return next((child for k, child in _children(node) if k == key), None)


def read(node: DictConfig, key: Any, path: str) -> Any:
    """``node[key]`` as plain Python, interpolations resolved.

    Raises:
        Later: a resolver could not give the value yet (e.g. ``${from_data:...}``).
        ConfigError: the value is missing (``???``) or refers to a key or resolver that does not exist.
    """
    try:
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        raise ConfigError(f"{path} is required but has no value (???); pass {path}=<value>") from None
    except (InterpolationKeyError, UnsupportedInterpolationType, GrammarParseError) as exc:
        raise ConfigError(f"{path}={_raw(node, key)} cannot be resolved: {_first_line(exc)}") from None
    except InterpolationResolutionError as exc:
        raise Later() from exc
    return value


def _raw(node: DictConfig, key: Any) -> str | None:
    """The value as written, when it is an interpolation (for messages)."""
    if not OmegaConf.is_interpolation(node, key):
        return None
    return str(node._get_node(key)._value())  # type: ignore[union-attr]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --- messages -----------------------------------------------------------------------


def _unknown_key(path: str | None, target: str, key: str, known: Sequence[str]) -> str:
    full = f"{path}.{key}" if path else key
    owner = f"{path} ({target})" if path else target
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    listing = ", ".join(known) if known else "none"
    return f"{full}: {owner} has no setting {key!r}{hint}; its settings: {listing}"


def _where(errors: Sequence[Mapping[str, Any]], value: Any) -> str:
    """`` (item 2 is 'x')`` when the error is inside a list or mapping value."""
    for error in errors:
        loc = [p for p in error.get("loc", ()) if isinstance(p, int) or (isinstance(value, dict) and p in value)]
        if loc and isinstance(value, (list, dict)):
            inner = value
            for p in loc:
                try:
                    inner = inner[p]
                except (IndexError, KeyError, TypeError):
                    return ""
            label = f"item {loc[0]}" if isinstance(loc[0], int) else f"key {loc[0]}"
            return f" ({label} is {show(inner)})"
    return ""
