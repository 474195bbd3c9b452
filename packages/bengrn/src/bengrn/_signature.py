"""Check keyword values against a callable's signature and type annotations, before calling it.

Used for method parameters (``--param``) and task options (``--task-option``): a misspelt name or
a value of the wrong type is reported in one line before any method runs, instead of a
``TypeError`` from deep inside the computation. Annotations understood: ``int``, ``float`` (an
``int`` is accepted), ``bool``, ``str``, ``None``, ``X | Y`` / ``Optional``, ``Literal[...]``,
``Sequence[X]`` / ``list[X]`` / ``tuple[X, ...]``, ``Mapping``/``dict``, ``os.PathLike`` and
``Path``; anything else (``Any``, a class of the method's own) is accepted unchecked.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["check_call"]

_UNKNOWN = object()


def _describe(hint: Any) -> str:
    if hint is type(None) or hint is None:
        return "None"
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return " or ".join(repr(v) for v in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is not None:
        args = typing.get_args(hint)
        name = getattr(origin, "__name__", str(origin))
        if origin in (list, tuple, collections.abc.Sequence) and args:
            return f"a list of {_describe(args[0])}"
        return name
    return getattr(hint, "__name__", str(hint))


def _matches(value: Any, hint: Any) -> Any:
    """True / False when ``hint`` is understood, :data:`_UNKNOWN` otherwise."""
    if hint is Any or hint is inspect.Parameter.empty:
        return _UNKNOWN
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, arg) for arg in typing.get_args(hint)]
        if any(r is True for r in results):
            return True
        return _UNKNOWN if any(r is _UNKNOWN for r in results) else False
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) != 1:
            return True
        results = [_matches(item, args[0]) for item in value]
        return False if any(r is False for r in results) else True
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (os.PathLike, Path):
        return isinstance(value, str | os.PathLike)
    return _UNKNOWN


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    while isinstance(fn, functools.partial):
        fn = fn.func
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations are simply not checked
        return {}


def check_call(
    fn: Callable[..., Any],
    values: Mapping[str, Any],
    *,
    what: str,
    skip_first: bool = False,
) -> None:
    """Raise ``TypeError`` (one line) when ``fn`` does not take ``values`` as keywords.

    ``what`` names the callable in the message (e.g. ``"method 'genie3'"``); ``skip_first``
    leaves out the first parameter (a method's expression set), which ``values`` may not set.
    Names are checked unless ``fn`` takes ``**kwargs``; values are checked against the
    annotations the module docstring lists.
    """
    if not values:
        return
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    parameters = list(signature.parameters.values())[1 if skip_first else 0 :]
    named = {
        p.name: p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        unknown = sorted(set(values) - set(named))
        if unknown:
            raise TypeError(
                f"{what} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
                f"{', '.join(named) or '(none)'}"
            )
    hints = _hints(fn)
    for name, value in values.items():
        if name not in named:
            continue
        hint = hints.get(name, inspect.Parameter.empty)
        if _matches(value, hint) is False:
            default = named[name].default
            example = "" if default is inspect.Parameter.empty else f" (default {default!r})"
            raise TypeError(
                f"{what}: {name}={value!r} ({type(value).__name__}) is not "
                f"{_describe(hint)}{example}"
            )
