"""The grading harness: a student's function against minibp's on random cases, with a diagnosis.

Each checker builds a few :class:`Case` objects: keyword arguments for the student's function,
minibp's answer (computed by minibp's own tested layers and rules), and what each *named mistake*
would return on the same inputs. :func:`grade` calls the student's function on every case and
returns ``None`` when every answer agrees with minibp's, else one sentence: the named mistake
whose output the student's matches, or the shape or the size of the difference when none does.

:func:`check` is what a notebook calls. A stub that still raises ``NotImplementedError`` gets a
note and minibp's own function back, so the notebook runs on; a wrong answer raises
:class:`ExerciseMistake` with the sentence; a right one gets the student's function back. With
the environment variable ``MINIBP_EXERCISES_STRICT=1`` (the solution notebooks' test) a stub
raises instead of falling back.

The first case of every checker has equal dimensions wherever a transpose could hide, so that a
transposed answer has the right shape and is named, not only a shape error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: the environment variable that turns a stub's fallback into an error
STRICT_ENV = "MINIBP_EXERCISES_STRICT"

#: the generator seed of every checker's random cases (the same cases on every run)
SEED = 2019


class ExerciseMistake(AssertionError):
    """A student's answer disagrees with minibp's; the message names the likely mistake."""


@dataclass
class Case:
    """One random case: the student's inputs, minibp's answer, and the answer of each named mistake."""

    inputs: dict[str, Any]
    want: Any
    mistakes: list[tuple[str, Any]] = field(default_factory=list)


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, tuple):
        return np.array([np.asarray(v, dtype=float) for v in value], dtype=float)
    return np.asarray(value, dtype=float)


def _same(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=False))


def _shapes(inputs: dict[str, Any]) -> str:
    parts = [f"{k} {tuple(np.shape(v))}" if np.ndim(v) else f"{k}={v!r}" for k, v in inputs.items()]
    return ", ".join(parts)


def _copy(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}


def _verdict(got: np.ndarray, case: Case, rtol: float, atol: float) -> str | None:
    """``None`` if ``got`` is minibp's answer to ``case``, else the sentence that says what is wrong."""
    want = _as_array(case.want)
    if _same(got, want, rtol, atol):
        return None
    for sentence, wrong in case.mistakes:
        if _same(got, _as_array(wrong), rtol, atol):
            return sentence
    if got.shape != want.shape:
        return (
            f"wrong shape: it returns shape {got.shape} where minibp's answer has shape {want.shape} "
            f"(inputs {_shapes(case.inputs)})."
        )
    if not np.all(np.isfinite(got)):
        return f"it returns NaN or infinity on inputs {_shapes(case.inputs)}."
    err = float(np.abs(got - want).max())
    scale = float(np.abs(want).max()) or 1.0
    return (
        f"the values differ from minibp's by up to {err:.3g} ({err / scale:.1%} of the largest entry) "
        f"on inputs {_shapes(case.inputs)}, and by none of the usual mistakes."
    )


def grade(student: Callable[..., Any], cases: list[Case], rtol: float = 1e-7, atol: float = 1e-10) -> str | None:
    """``None`` if ``student`` gives minibp's answer on every case, else one sentence saying what is wrong.

    ``NotImplementedError`` from the student's function propagates: the stub is not filled in yet.
    """
    for case in cases:
        inputs = _copy(case.inputs)
        try:
            got = student(**inputs)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 - any error of the student's is reported, not raised
            return f"it raises {type(err).__name__} ({err}) on inputs {_shapes(case.inputs)}."
        for key, value in case.inputs.items():
            if isinstance(value, np.ndarray) and not np.array_equal(inputs[key], value, equal_nan=True):
                return f"it changes its input {key} in place; return a new array and leave the inputs as they are."
        verdict = _verdict(_as_array(got), case, rtol, atol)
        if verdict is not None:
            return verdict
    return None


def strict() -> bool:
    """Whether a stub must raise instead of falling back on minibp's function."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def check(
    title: str,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: list[Case],
    rtol: float = 1e-7,
    atol: float = 1e-10,
) -> Callable[..., Any]:
    """Grade ``student`` on ``cases`` and say so in one line; return the function the notebook uses next.

    * a stub (``NotImplementedError``): a note, and ``reference`` (minibp's) in its place;
    * a wrong answer: :class:`ExerciseMistake` naming the likely mistake;
    * a right answer: ``student`` itself.
    """
    try:
        verdict = grade(student, cases, rtol, atol)
    except NotImplementedError:
        if strict():
            raise
        print(f"[not done] {title}: the stub still raises NotImplementedError, so the cells below use minibp's own.")
        return reference
    if verdict is not None:
        raise ExerciseMistake(f"{title}: {verdict}")
    print(f"[correct] {title}: matches minibp on {len(cases)} random cases.")
    return student


def rng() -> np.random.Generator:
    """The generator of a checker's random cases."""
    return np.random.default_rng(SEED)
