"""Settings declared once: a dataclass field carries its default, its help text and its valid range.

:func:`setting` makes such a field; :func:`check_settings` checks and converts every one of
them on an instance. A learning rule's own fields (``minibp/rules/``) and the run's settings
(``config.py``) are declared this way, so the command line's flags and help, the checks of a
``--config`` file and the settings saved with a run all follow from one declaration.

A setting's type is its default's: a bool, an int, a float, a string, or a tuple of ints or
of floats (a list in JSON). A default of ``None`` means "chosen elsewhere" (the model's own
default, see ``config.py``); its type is then given with ``kind``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

_KINDS = (bool, int, float, str)


def setting(
    default: Any,
    help: str,  # noqa: A002 (argparse's name for it)
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] | Callable[[], Iterable[str]] | None = None,
    kind: type | None = None,
    item: type | None = None,
) -> Any:
    """A dataclass field that is a setting: ``default``, ``help`` (one line, for ``--help``) and
    its valid range (``ge``/``gt``/``le``/``lt``, applied to every item of a list setting), or its
    ``choices`` (a sequence, or a function returning one, for registries filled at import).

    ``kind`` gives the type where the default is ``None``; ``item`` the type of a list setting's
    items (``int`` or ``float``)."""
    if kind is None:
        kind = tuple if isinstance(default, tuple) else type(default)
    if kind is tuple and item is None:
        raise TypeError("a list setting needs item=int or item=float")
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    meta = {"help": help, "kind": kind, "item": item, "choices": choices, "bounds": bounds}
    return dataclasses.field(default=default, metadata=meta)


def settings_of(cls_or_obj: Any) -> list[dataclasses.Field]:
    """The fields of a dataclass (or instance) that are settings, in declaration order."""
    return [f for f in dataclasses.fields(cls_or_obj) if "help" in f.metadata]


def choices_of(f: dataclasses.Field) -> list[str] | None:
    """A setting's allowed values, or None if any value of its type will do."""
    choices = f.metadata["choices"]
    if choices is None:
        return None
    return list(choices() if callable(choices) else choices)


def describe_range(f: dataclasses.Field) -> str:
    """The setting's valid range in words, e.g. ``"> 0"`` or ``"in [0, 1)"`` ("" when it has none)."""
    b = f.metadata["bounds"]
    low = ("[", b["ge"]) if b["ge"] is not None else ("(", b["gt"]) if b["gt"] is not None else None
    high = ("]", b["le"]) if b["le"] is not None else (")", b["lt"]) if b["lt"] is not None else None
    if low and high:
        return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]:g}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {high[1]:g}"
    return ""


def _number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _integral(x: Any) -> bool:
    return _number(x) and math.isfinite(float(x)) and float(x).is_integer()


def _convert(kind: type, value: Any) -> tuple[bool, Any, str]:
    """``(ok, value as kind, what was wanted)`` for one scalar."""
    if kind is bool:
        return isinstance(value, (bool, np.bool_)), bool(value), "true or false"
    if kind is int:
        return _integral(value), int(value) if _integral(value) else value, "an integer"
    if kind is float:
        return _number(value), float(value) if _number(value) else value, "a number"
    return isinstance(value, str), value, "text"


def _in_range(bounds: dict[str, float | None], v: float) -> bool:
    if isinstance(v, float) and not math.isfinite(v):
        return False
    ge, gt, le, lt = bounds["ge"], bounds["gt"], bounds["le"], bounds["lt"]
    return not (
        (ge is not None and not v >= ge)
        or (gt is not None and not v > gt)
        or (le is not None and not v <= le)
        or (lt is not None and not v < lt)
    )


def check_value(f: dataclasses.Field, value: Any, name: str) -> Any:
    """``value`` converted to setting ``f``'s type, or a ``ValueError`` naming ``name`` and saying
    what it must be. ``None`` passes where the default is ``None``."""
    meta = f.metadata
    kind, item = meta["kind"], meta["item"]
    if value is None and f.default is None:
        return None
    if kind is tuple:
        ok = isinstance(value, (list, tuple))
        items = [_convert(item, v) for v in value] if ok else []
        ok = ok and all(good for good, _, _ in items)
        want = f"a list of {'integers' if item is int else 'numbers'}"
        converted: Any = tuple(v for _, v, _ in items)
        numbers = converted if ok else ()
    else:
        ok, converted, want = _convert(kind, value)
        numbers = (converted,) if ok and kind in (int, float) else ()
    if not ok:
        raise ValueError(f"setting {name!r} must be {want}, got {value!r} ({type(value).__name__})")
    words = describe_range(f)
    if words and not all(_in_range(meta["bounds"], v) for v in numbers):
        what = "have every item " if kind is tuple else "be "
        raise ValueError(f"setting {name!r} must {what}{words}, got {value!r}")
    if kind is float and not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"setting {name!r} must be a finite number, got {value!r}")
    choices = choices_of(f)
    if choices is not None and converted not in choices:
        raise ValueError(f"setting {name!r} must be one of {', '.join(choices)}; got {value!r}")
    return converted


def check_settings(obj: Any, prefix: str = "") -> None:
    """Check every setting of the dataclass instance ``obj`` and store it converted to its type
    (``10.0`` → ``10`` for an int, a JSON list → a tuple). Errors name the setting as
    ``prefix + field name`` (the name it has in a run's settings)."""
    for f in settings_of(obj):
        object.__setattr__(obj, f.name, check_value(f, getattr(obj, f.name), prefix + f.name))
