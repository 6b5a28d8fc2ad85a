"""Pair, check, grade-strip and run the notebooks.

Each notebook's one source is a plain Python file in jupytext's py:percent format
(``notebooks/NN_name.py``): the instructor's version, with the answers to its implement-it
exercises between nbgrader's markers ``### BEGIN SOLUTION`` and ``### END SOLUTION``. From it:

* ``notebooks/NN_name.ipynb``, the same notebook for Jupyter, paired with the ``.py`` by
  jupytext (``notebooks/jupytext.toml``: editing either in Jupyter with jupytext installed
  updates the other);
* ``notebooks/student/NN_name.ipynb``, the student's version: every solution region replaced by
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` (nbgrader's ClearSolutions convention;
  in a Markdown cell, ``YOUR ANSWER HERE``).

    python notebooks/build.py                          # write every .ipynb and student notebook from its .py
    python notebooks/build.py --check                  # fail if any of them is out of date
    python notebooks/build.py --run --figures figures  # run every student notebook and worked solution,
                                                       # and the solutions' exercise cells; save the plots
    python notebooks/build.py --grade a.ipynb b.ipynb  # grade students' notebooks, exercise by exercise
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("[0-9][0-9]_*.py"))
WORKED = sorted((HERE / "solutions").glob("[0-9][0-9]_*.py"))  # worked solutions of the open-ended exercises
SOURCES = NOTEBOOKS + WORKED
STUDENT = HERE / "student"

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
#: what an exercise cell may use besides its own lines (see ``exercise_cells``)
EXERCISE_PRELUDE = "import numpy as np\n\nimport minibp\nfrom minibp import exercises\n"


def read(source: Path) -> nbformat.NotebookNode:
    """The notebook of a py:percent source, read by jupytext, with stable cell ids and no outputs."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = {"kernelspec": dict(KERNELSPEC)}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids keep the generated files identical run to run
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "lines_to_next_cell"}  # jupytext's spacing
    return nb


def strip_solutions(text: str, stub: tuple[str, ...] = CODE_STUB) -> str:
    """``text`` with every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region replaced by ``stub``,
    indented as the ``BEGIN`` marker is."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN!r}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
        elif marker == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r}")
    return "\n".join(out)


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every solution region stripped (nbgrader's convention)."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if BEGIN in cell.source:
            cell.source = strip_solutions(cell.source, CODE_STUB if cell.cell_type == "code" else TEXT_STUB)
    return nb


def exercise_cells(nb: nbformat.NotebookNode) -> list[str]:
    """The code cells of ``nb`` that hold a solution region: each defines the student's function and
    calls its checker, using only :data:`EXERCISE_PRELUDE`'s names and its own (see :func:`grade`)."""
    return [c.source for c in nb.cells if c.cell_type == "code" and BEGIN in c.source]


def targets(source: Path) -> dict[Path, str]:
    """Every file generated from ``source``, with its text."""
    nb = read(source)
    out = {source.with_suffix(".ipynb"): nbformat.writes(nb) + "\n"}
    if source in NOTEBOOKS:
        out[STUDENT / f"{source.stem}.ipynb"] = nbformat.writes(student_version(nb)) + "\n"
    return out


def build(check: bool) -> int:
    stale = []
    for src in SOURCES:
        for target, text in targets(src).items():
            if check:
                if not target.exists() or target.read_text() != text:
                    stale.append(target)
            else:
                target.parent.mkdir(exist_ok=True)
                target.write_text(text)
    if stale:
        names = ", ".join(str(p.relative_to(HERE.parent)) for p in stale)
        print(f"out of date: {names}; run `python notebooks/build.py`", file=sys.stderr)
        return 1
    return 0


def execute(
    nb: nbformat.NotebookNode, folder: Path, figures: Path | None = None, timeout: int = 300
) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel, in ``folder``; raise on the first error."""
    from nbclient import NotebookClient  # noqa: PLC0415

    if figures is not None:
        os.environ["MINIBP_FIGURES"] = str(figures.resolve())
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def grade(path: Path) -> list[tuple[str, str]]:
    """Each exercise of a notebook (a student's ``.ipynb``, or a ``.py`` source: the solution version)
    with its verdict: ``correct``, ``not done`` or the checker's sentence. Only the exercise cells
    (those that call a checker) run, each with :data:`EXERCISE_PRELUDE` and nothing else, in strict
    mode, so a stub counts as not done instead of falling back on minibp's function."""
    from minibp.exercises import STRICT_ENV, ExerciseMistake  # noqa: PLC0415

    nb = read(path) if path.suffix == ".py" else nbformat.read(path, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "exercises.check_" in c.source]
    saved = os.environ.get(STRICT_ENV)
    os.environ[STRICT_ENV] = "1"
    verdicts = []
    try:
        for cell in cells:
            name = cell.split("exercises.check_", 1)[1].split("(", 1)[0]
            try:
                exec(compile(EXERCISE_PRELUDE + cell, f"{path.name} ({name})", "exec"), {})  # noqa: S102
                verdicts.append((name, "correct"))
            except NotImplementedError:
                verdicts.append((name, "not done"))
            except ExerciseMistake as err:
                verdicts.append((name, str(err)))
            except Exception as err:  # noqa: BLE001 - a broken cell is a verdict, not a crash of the grader
                verdicts.append((name, f"the cell raises {type(err).__name__}: {err}"))
    finally:
        if saved is None:
            del os.environ[STRICT_ENV]
        else:
            os.environ[STRICT_ENV] = saved
    return verdicts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that every generated notebook matches its .py")
    p.add_argument("--run", action="store_true", help="run every student notebook, worked solution and exercise")
    p.add_argument("--figures", type=Path, help="with --run: save the notebooks' figures in this folder")
    p.add_argument("--grade", type=Path, nargs="+", metavar="NOTEBOOK", help="grade students' notebooks")
    args = p.parse_args(argv)
    if args.grade:
        failed = 0
        for path in args.grade:
            verdicts = grade(path)
            done = sum(v == "correct" for _, v in verdicts)
            print(f"{path}: {done} of {len(verdicts)} exercises correct")
            for name, verdict in verdicts:
                print(f"  {name}: {verdict}")
            failed += done < len(verdicts)
        return 1 if failed else 0
    if args.run:
        for src in NOTEBOOKS:
            print(f"grading the solution version of {src.relative_to(HERE.parent)}", flush=True)
            wrong = [f"{name}: {verdict}" for name, verdict in grade(src) if verdict != "correct"]
            if wrong:
                raise SystemExit(f"{src.name}, solution version: " + "; ".join(wrong))
            print(f"running the student version of {src.relative_to(HERE.parent)}", flush=True)
            execute(student_version(read(src)), STUDENT, args.figures)
        for src in WORKED:
            print(f"running {src.relative_to(HERE.parent)}", flush=True)
            execute(read(src), src.parent, args.figures)
        return 0
    return build(args.check)


if __name__ == "__main__":
    sys.exit(main())
