"""benchmarks/bench_repro.py's --tabulate: the table over finished runs read from folders, without
training. Folders are written here as a run writes them (config.json and metrics.jsonl per rule)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from minibp import TrainConfig

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # bench_repro imports its neighbour, common.py
    try:
        spec = importlib.util.spec_from_file_location("bench_repro", BENCH / "bench_repro.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


PLAN = TrainConfig(model="cnn", epochs=2, lr=0.01)


def write_run(folder: Path, rule: str, seed: int, errors: list[float], **changed) -> None:
    run = folder / rule
    run.mkdir(parents=True)
    config = dataclasses.replace(PLAN, rule=rule, seed=seed, **changed)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    records = [{"epoch": e, "test_accuracy": 1 - err / 100, "matrix_angle": [1.0], "delta_angle": [2.0]}
               for e, err in enumerate(errors)]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_tabulate_reads_each_runs_seed_from_folders_of_any_layout(bench, tmp_path):
    write_run(tmp_path / "old", "bp", 0, [90, 20, 10])  # a single comparison
    write_run(tmp_path / "new" / "seed-1", "bp", 1, [90, 15, 12])  # a folder of seed-<s>/ comparisons
    write_run(tmp_path / "new" / "seed-2", "bp", 2, [90, 11, 14])
    found = bench.finished_runs([tmp_path / "old", tmp_path / "new"], {"bp": dataclasses.replace(PLAN, rule="bp")})
    assert sorted(found) == [0, 1, 2]
    result = bench.over_seeds(found, "bp")
    assert result["final_error_per_seed"] == pytest.approx({0: 10, 1: 12, 2: 14})
    assert result["final_error_mean"] == pytest.approx(12) and result["final_error_std"] == pytest.approx(2)
    assert result["best_error_per_seed"][2] == pytest.approx(11)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (lambda d: write_run(d, "bp", 0, [90, 20, 10]), "bp under seed 0 twice"),
        (lambda d: write_run(d, "bp", 1, [90, 20, 10], lr=0.02), r"other settings \(lr: saved 0.02, now 0.01\)"),
        (lambda d: write_run(d, "bp", 1, [90, 20]), "stopped at epoch 1 of 2"),
    ],
    ids=["duplicate", "other-settings", "unfinished"],
)
def test_tabulate_refuses_what_would_make_a_wrong_table(bench, tmp_path, second, message):
    write_run(tmp_path / "a", "bp", 0, [90, 20, 10])
    second(tmp_path / "b")
    with pytest.raises(ValueError, match=message):
        bench.finished_runs([tmp_path / "a", tmp_path / "b"], {"bp": dataclasses.replace(PLAN, rule="bp")})


def test_a_layer_without_an_angle_stays_without_one_over_the_seeds(bench):
    """DFA has no matrix angle where a convolution lies between a layer and the output (NaN)."""
    run = [{"epoch": 1, "test_accuracy": 0.9, "matrix_angle": [float("nan"), 30.0], "delta_angle": [1.0]}]
    result = bench.over_seeds({0: {"dfa": run}, 1: {"dfa": [{**run[0], "matrix_angle": [float("nan"), 40.0]}]}}, "dfa")
    assert np.isnan(result["matrix_angle_mean"][0]) and np.isnan(result["matrix_angle_std"][0])
    assert result["matrix_angle_mean"][1] == pytest.approx(35.0)
