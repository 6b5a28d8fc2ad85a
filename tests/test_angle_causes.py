"""benchmarks/angle_causes.py, the diagnosis of a run's last matrix angles, on a tiny ResNet-20 run:
KP's remaining ``W − Bᵀ`` is exactly what its decay leaves, and the weight mirror's fixed point
with bias-blocking has nearly no angle, and FA's start, rebuilt from the seed, is the run's own."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from minibp import TrainConfig, compare

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "angle_causes.py"


@pytest.fixture(scope="module")
def causes():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports its neighbour, common.py
    try:
        spec = importlib.util.spec_from_file_location("angle_causes", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="resnet20", width=2, blocks=1, epochs=1, dtype="float64", wm_bias_blocking=False)
    compare(config, ["wm", "kp", "fa"], out=out, progress=False, plot=False)
    return out


def test_kp_keeps_exactly_what_its_decay_leaves_of_w_minus_bt(causes, run):
    found = causes.kp_decay(run / "kp")
    assert 0.5 < found["decay_leaves"] < 0.999  # some decay acted, not all
    for row in found["layers"]:
        assert row["D_end_over_D_start"] == pytest.approx(found["decay_leaves"], rel=1e-6), row["layer"]


def test_the_mirror_with_bias_blocking_settles_near_w_transposed(causes, run):
    found = causes.wm_fixed_points(run / "wm", passes=100)
    assert found["bias_blocking_in_run"] is False
    assert max(found["fixed_point_with_blocking"]) < 5
    assert np.mean(found["last"]) > np.mean(found["fixed_point_with_blocking"])  # one epoch leaves lag


def test_fa_s_rebuilt_start_is_the_runs_epoch_0(causes, run):
    found = causes.fa_alignment(run / "fa")
    first = json.loads((run / "fa" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["epoch"] == 0
    start = [row["B_to_start"] for row in found["layers"]]
    np.testing.assert_allclose(start, first["matrix_angle"], atol=1e-6)  # B never changed; W₀ rebuilt exactly
    assert 0 < found["decay_leaves"] < 1 and all(0 < row["start_share"] for row in found["layers"])
