"""Build, check and run the notebooks.

Each notebook is written as a plain Python file in the "percent" format (``# %%`` starts
a code cell, ``# %% [markdown]`` a Markdown cell whose lines start with ``# ``): that file
is the one to read and review. The ``.ipynb`` beside it is generated from it, with no
outputs, for opening in Jupyter.

    python notebooks/build.py                          # regenerate every .ipynb from its .py
    python notebooks/build.py --check                  # fail if any .ipynb is out of date
    python notebooks/build.py --run --figures figures  # execute every notebook; save its plots in figures/
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = sorted(HERE.glob("[0-9][0-9]_*.py")) + sorted((HERE / "solutions").glob("[0-9][0-9]_*.py"))


def parse_percent(text: str) -> nbformat.NotebookNode:
    """A notebook from percent-format source."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            cells[-1][1].append(line)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines)
            nb.cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            nb.cells.append(nbformat.v4.new_code_cell("\n".join(lines)))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids keep the generated files identical run to run
    return nb


def render(source: Path) -> str:
    return nbformat.writes(parse_percent(source.read_text())) + "\n"


def build(check: bool) -> int:
    stale = []
    for src in SOURCES:
        target = src.with_suffix(".ipynb")
        text = render(src)
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(target)
        else:
            target.write_text(text)
    if stale:
        names = ", ".join(str(p.relative_to(HERE.parent)) for p in stale)
        print(f"out of date: {names}; run `python notebooks/build.py`", file=sys.stderr)
        return 1
    return 0


def execute(path: Path, figures: Path | None = None, timeout: int = 300) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel, in its own folder; raise on the first error."""
    from nbclient import NotebookClient  # noqa: PLC0415

    nb = nbformat.reads(render(path.with_suffix(".py")), as_version=4)
    if figures is not None:
        os.environ["MINIBP_FIGURES"] = str(figures.resolve())
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that every .ipynb matches its .py")
    p.add_argument("--run", action="store_true", help="execute every notebook and solution")
    p.add_argument("--figures", type=Path, help="with --run: save the notebooks' figures in this folder")
    args = p.parse_args(argv)
    if args.run:
        for src in SOURCES:
            print(f"running {src.relative_to(HERE.parent)}", flush=True)
            execute(src, args.figures)
        return 0
    return build(args.check)


if __name__ == "__main__":
    sys.exit(main())
