"""The notebooks: each .ipynb and student notebook matches its py:percent source; every notebook has an
exercise to implement; the solution version passes every checker; the student version runs top to
bottom on its stubs; every worked solution runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("jupytext", reason="install the test extra: pip install -e '.[test]'")
pytest.importorskip("nbclient", reason="install the test extra: pip install -e '.[test]'")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import build  # noqa: E402


def test_every_generated_notebook_matches_its_source():
    assert build.NOTEBOOKS and build.WORKED, "no notebooks found"
    assert build.build(check=True) == 0


@pytest.mark.parametrize("source", build.SOURCES, ids=lambda p: p.stem)
def test_jupytext_writes_each_py_back_from_its_ipynb(source):
    import jupytext  # noqa: PLC0415

    nb = jupytext.read(source.with_suffix(".ipynb"))
    nb.metadata["jupytext"] = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "-all"}  # jupytext.toml's
    assert jupytext.writes(nb, fmt="py:percent") == source.read_text(), "run: python notebooks/build.py"


def test_strip_solutions_keeps_the_indent_and_rejects_unbalanced_markers():
    text = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\n\nf = g(f)"
    assert build.strip_solutions(text) == (
        "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n\nf = g(f)"
    )
    for bad in ["### BEGIN SOLUTION\nx", "x\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION"]:
        with pytest.raises(ValueError, match="SOLUTION"):
            build.strip_solutions(bad)


@pytest.mark.parametrize("source", build.NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_an_exercise_and_its_student_version_has_only_stubs(source):
    nb = build.read(source)
    cells = build.exercise_cells(nb)
    assert 1 <= len(cells) <= 3, f"{source.name}: {len(cells)} exercises to implement"
    assert all("exercises.check_" in cell for cell in cells), "each exercise cell calls its checker"
    student = "\n".join(c.source for c in build.student_version(nb).cells)
    assert build.BEGIN not in student and build.END not in student
    assert student.count("raise NotImplementedError()") == len(cells)


@pytest.mark.parametrize("source", build.NOTEBOOKS, ids=lambda p: p.stem)
def test_solution_version_passes_every_checker(source):
    verdicts = build.grade(source)  # strict mode: a stub is "not done", a wrong answer gets the checker's sentence
    assert len(verdicts) == len(build.exercise_cells(build.read(source))) >= 1
    assert all(verdict == "correct" for _, verdict in verdicts), verdicts


def test_grade_names_a_student_s_mistake(tmp_path):
    nb = build.student_version(build.read(build.HERE / "02_feedback_alignment.py"))
    for cell in nb.cells:
        if "def eq4_update" in cell.source:
            cell.source = cell.source.replace("raise NotImplementedError()", "return lr * delta_next.T @ y_prev")
    submission = tmp_path / "submission.ipynb"
    build.nbformat.write(nb, submission)
    assert build.grade(submission) == [
        ("eq3_delta", "not done"),
        ("eq4_update", "eq (4), the forward update: sign flipped: eq (4) steps down the gradient, ΔW = −η δ yᵀ."),
    ]
    assert build.main(["--grade", str(submission)]) == 1


@pytest.mark.parametrize("source", build.NOTEBOOKS, ids=lambda p: p.stem)
def test_student_version_runs_top_to_bottom(source, tmp_path):
    solution = build.read(source)
    nb = build.execute(build.student_version(solution), build.STUDENT, figures=tmp_path)  # where students open it
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert text.count("[not done]") == len(build.exercise_cells(solution))  # every stub fell back on minibp's


@pytest.mark.parametrize("source", build.WORKED, ids=lambda p: p.stem)
def test_worked_solution_runs_top_to_bottom(source, tmp_path):
    build.execute(build.read(source), source.parent, figures=tmp_path)


def _install_cell(source):
    return next(c.source for c in build.read(source).cells if c.cell_type == "code")


def test_every_notebook_starts_with_the_same_install_cell():
    cells = {_install_cell(source) for source in build.NOTEBOOKS}
    assert len(cells) == 1
    assert "MINIBP_SOURCE" in cells.pop()


def test_install_cell_installs_from_the_source_it_is_given_and_guesses_none(monkeypatch):
    cell = _install_cell(build.NOTEBOOKS[0])
    calls = []
    monkeypatch.setattr("subprocess.check_call", calls.append)
    monkeypatch.setitem(sys.modules, "minibp", None)  # as on a fresh Colab machine: import minibp fails
    monkeypatch.delenv("MINIBP_PIP_SOURCE", raising=False)
    with pytest.raises(ModuleNotFoundError, match="set MINIBP_SOURCE"):
        exec(cell, {})
    assert calls == []
    monkeypatch.setenv("MINIBP_PIP_SOURCE", "git+https://example.invalid/fork/minibp")
    exec(cell, {})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "git+https://example.invalid/fork/minibp"]]
    monkeypatch.delitem(sys.modules, "minibp")
    calls.clear()
    exec(cell, {})  # minibp importable: nothing to install
    assert calls == []
