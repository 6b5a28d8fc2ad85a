"""The paper's qualitative claims at toy scale, from `minibp compare` with its defaults on digits.

This trains all five rules for the full default schedule (about 30 s on 2 cores).
"""

from __future__ import annotations

import pytest

from minibp import TrainConfig, compare


@pytest.fixture(scope="module")
def summary():
    return compare(TrainConfig(), progress=False, plot=False).summary()


@pytest.mark.slow
def test_accuracy(summary):
    for rule in ("bp", "wm", "kp"):
        assert summary[rule]["test_accuracy"] >= 0.97, (rule, summary[rule]["test_accuracy"])
    for rule in ("fa", "ss"):
        assert summary[rule]["test_accuracy"] >= 0.95, (rule, summary[rule]["test_accuracy"])


@pytest.mark.slow
def test_alignment(summary):
    assert max(summary["kp"]["matrix_angle"]) < 5  # KP: near-zero angles (Fig 4c)
    assert max(summary["wm"]["matrix_angle"]) < 15  # WM: small angles (Fig 4a)
    # FA never uses Wᵀ: every B that carries feedback (layers 2..L) stays far from it
    assert min(summary["fa"]["matrix_angle"][1:]) > 20
    assert summary["bp"]["matrix_angle"] == [0.0, 0.0, 0.0]
