"""Every notebook and worked solution runs top to bottom, and its .ipynb matches its .py source."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import build  # noqa: E402

pytest.importorskip("nbclient", reason="install the test extra: pip install -e '.[test]'")


def test_every_ipynb_matches_its_source():
    assert build.SOURCES, "no notebooks found"
    assert build.build(check=True) == 0


@pytest.mark.parametrize("source", build.SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(source, tmp_path):
    build.execute(source, figures=tmp_path)
