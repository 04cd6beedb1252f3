"""Config values and annotations in words, for one-line messages.

:func:`show` writes a value as it is typed on the command line (``null``, ``true``,
``[1,2]``); :func:`describe` says what an annotation accepts, its ``annotated_types``
constraints included: ``Annotated[int, Ge(1)] | None`` is "an integer >= 1 or null".
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, Sequence
from enum import Enum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import annotated_types as at


def show(value: Any) -> str:
    """A value written as on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value if value and value.strip() == value else repr(value)
    return str(value)


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def describe(annotation: Any) -> str:
    """An annotation in words: ``an integer >= 1 or null``, ``one of auto, cls, mean``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base, *meta = args
        return " ".join([describe(base), *filter(None, (_constraint(m) for m in _merged_bounds(meta)))])
    if origin in (typing.Union, UnionType) or origin is typing.Literal:
        return _alternatives(annotation)
    if origin in (list, tuple, set, frozenset) or origin in _SEQUENCES:
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if origin in (dict,) or origin in _MAPPINGS:
        return "a mapping"
    if origin is Callable or annotation in (Callable, typing.Callable):
        return "a callable"
    return _NAMES.get(annotation) or _class_words(annotation)


def _alternatives(annotation: Any) -> str:
    """A union or ``Literal`` in words, its literal values gathered into one list (nested unions flattened)."""
    values: list[Any] = []
    words: list[str] = []
    nullable = False

    def gather(a: Any) -> None:
        nonlocal nullable
        origin = typing.get_origin(a)
        if a is NoneType or a is None:
            nullable = True
        elif origin is typing.Literal:
            for value in typing.get_args(a):
                gather(value) if value is None else values.append(value)
        elif origin in (typing.Union, UnionType):
            for member in typing.get_args(a):
                gather(member)
        elif describe(a) not in words:
            words.append(describe(a))

    gather(annotation)
    unique = list(dict.fromkeys(show(v) for v in values))
    if unique:
        words.insert(0, f"one of {', '.join(unique)}" if len(unique) > 1 else unique[0])
    return " or ".join(words + (["null"] if nullable else []))


def _merged_bounds(meta: list[Any]) -> list[Any]:
    """Separate bounds (``Gt(0), Lt(1)``) as one interval, so they read ``in (0, 1)``."""
    bounds: dict[str, Any] = {}
    rest = []
    for m in meta:
        kind = next((k for k in _BOUNDS if isinstance(m, getattr(at, k.capitalize()))), None)
        if kind is not None and kind not in bounds:
            bounds[kind] = getattr(m, kind)
        else:
            rest.append(m)
    return [at.Interval(**bounds), *rest] if len(bounds) > 1 else meta


def _constraint(meta: Any) -> str | None:
    if isinstance(meta, at.Interval):
        lower = f"[{meta.ge}" if meta.ge is not None else (f"({meta.gt}" if meta.gt is not None else None)
        upper = f"{meta.le}]" if meta.le is not None else (f"{meta.lt})" if meta.lt is not None else None)
        if lower and upper:
            return f"in {lower}, {upper}"
        return " and ".join(f"{_BOUNDS[k]} {getattr(meta, k)}" for k in _BOUNDS if getattr(meta, k) is not None)
    for kind, sign in _BOUNDS.items():
        if isinstance(meta, getattr(at, kind.capitalize())):
            return f"{sign} {getattr(meta, kind)}"
    if isinstance(meta, at.MultipleOf):
        return f"that is a multiple of {meta.multiple_of}"
    if isinstance(meta, at.MinLen):
        return f"with at least {_items(meta.min_length)}"
    if isinstance(meta, at.MaxLen):
        return f"with at most {_items(meta.max_length)}"
    if isinstance(meta, at.Len):
        return f"with {meta.min_length} to {meta.max_length} items"
    return None


def _items(n: int) -> str:
    return "1 item" if n == 1 else f"{n} items"


def _plural(words: str) -> str:
    for article in ("an ", "a "):
        if words.startswith(article):
            head, _, rest = words[len(article) :].partition(" ")
            return f"{head}s {rest}".strip()
    return words


def _class_words(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(show(m.value) for m in annotation)
    name = getattr(annotation, "__qualname__", None) or getattr(annotation, "__name__", None) or str(annotation)
    return f"a {name}" if isinstance(annotation, type) else str(name)


_SEQUENCES = (Sequence, MutableSequence)
_MAPPINGS = (Mapping, MutableMapping)
_NAMES: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    NoneType: "null",
    bytes: "bytes",
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
    Any: "anything",
    Path: "a path",
}
