"""Where a finished run's last matrix angles come from, layer by layer, from its final checkpoint.

    python benchmarks/angle_causes.py RUN_FOLDER [--rules wm kp fa] [--passes 150] [--json FILE]

``RUN_FOLDER`` is a comparison's ``--out`` (``<rule>/checkpoint.npz`` and ``config.json`` in it).

* **WM.** With ``W``, the biases and batch norm's ``β`` held at their final values, the mirror runs
  ``--passes`` more passes from the run's last ``B`` (``η_B = λ_B = 0.05``, 512 noise samples per
  layer: 50 times faster to forget than the presets' mirroring, with four times the noise per
  pass), once with the run's own bias-blocking setting and once with the other. ``B`` then sits at
  the mirror's fixed point for these weights (eqs 11–12: ``(η_B / λ_B) σ² E[φ'] Wᵀ``, one factor
  per column), so the angle it reaches with the run's setting is what the fixed point allows; what
  the run's last angle has beyond it is lag behind a moving ``W`` and the noise of the run's
  smaller passes. The angle with bias-blocking on is what eq (12)'s equal factors give: the
  difference between the two is eq (11)'s doing. Eq (11) scales column ``i`` by the mean slope
  ``E[φ'(w_i·y + c_i)]``, for ReLU ``Φ(c_i / (σ‖w_i‖))``, so a larger noise ``--sigma`` brings every
  column's factor toward ``φ'(0)`` and the fixed point toward ``Wᵀ`` without bias-blocking.
* **KP.** ``‖W − Bᵀ‖`` at the end against the start (both rebuilt from the seed: the run's initial
  weights and feedback weights), against what the decay alone leaves (``W − Bᵀ``'s recurrence with
  momentum, iterated with the run's learning rates: :func:`kp_left`), and ``‖W‖`` at the end against
  the start. A KP angle is ``≈ atan(‖W − Bᵀ‖ / ‖W‖)``: it stays large when too little decay has
  acted, or when ``‖W‖`` shrank (batch norm after the ReLU makes a convolution's ``W``
  scale-free, so decay shrinks it as well).
* **FA.** ``B`` never changes, so an angle below 90° means ``W`` has come into line with ``Bᵀ``
  (Lillicrap et al. 2016's alignment). SGD with momentum and decay is linear in ``W``, so the final
  ``W = c W₀ + G``: ``c`` (:func:`kp_left`) is what decay leaves of the start, and ``G`` is what the
  gradients wrote. Per layer: the angle of ``B`` to ``G`` and to ``W₀``, and ``‖c W₀‖ / ‖W‖``, the
  share of the final ``W`` that is still its start.

Nothing is trained and the run folder is only read. The data set is loaded for its shapes and for
the probe batch that shapes some rules' feedback weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from common import table

from minibp import TrainConfig
from minibp.checkpoint import load_checkpoint
from minibp.metrics import angle, matrix_angles
from minibp.network import Network
from minibp.optim import get_schedule
from minibp.train import initial_network, load_data, make_optimizer

MIRROR = {"lr": 0.05, "decay": 0.05, "batch_size": 512, "every": 1, "batches": 1}


def kp_left(config: TrainConfig, steps_per_epoch: int) -> float:
    """The fraction of ``W − Bᵀ`` that decay alone leaves after the run: ``D_{t+1} = D_t − η_t v_{t+1}``,
    ``v_{t+1} = μ v_t + wd · D_t`` (KP's gradients cancel in ``W − Bᵀ``), with the run's schedule."""
    schedule = get_schedule(config.schedule, epochs=config.epochs, milestones=config.milestones, gamma=config.gamma)
    d, v = 1.0, 0.0
    for epoch in range(config.epochs):
        for step in range(steps_per_epoch):
            lr = schedule(config.lr, epoch + step / steps_per_epoch)
            v = config.momentum * v + config.weight_decay * d
            d -= lr * v
    return d


def load_run(folder: Path) -> tuple[TrainConfig, Any, Network, Any, Network]:
    """The run's config, rule, final network, the loaded data set and the network as it started."""
    config = TrainConfig(**json.loads((folder / "config.json").read_text()))
    data = load_data(config)
    rule = config.make_rule()
    x_probe = data.probe(min(config.probe_size, data.n_train))[0]
    example = np.asarray(x_probe[:1].reshape(1, *data.image_shape), dtype=config.dtype)

    start, net = initial_network(config, data, rule, example), initial_network(config, data, rule, example)
    load_checkpoint(folder / "checkpoint.npz", net, make_optimizer(config), rule)
    return config, rule, net, data, start


def wm_fixed_points(folder: Path, passes: int, sigma: float | None = None) -> dict[str, Any]:
    config, rule, net, _, _ = load_run(folder)
    last = matrix_angles(net, rule)
    saved_b = [layer.params["B"].copy() for layer in net.weight_layers]
    out: dict[str, Any] = {"bias_blocking_in_run": rule.bias_blocking, "sigma": sigma or rule.sigma, "last": last}
    for blocking in (rule.bias_blocking, not rule.bias_blocking):
        for layer, b in zip(net.weight_layers, saved_b, strict=True):
            layer.params["B"][...] = b
        mirror = dataclasses.replace(rule, bias_blocking=blocking, **MIRROR, sigma=sigma or rule.sigma)
        mirror.load_state({"steps": 0, "passes": 10**6})  # noise the run never drew
        for _ in range(passes):
            mirror.mirror(net)
        out["fixed_point_with_blocking" if blocking else "fixed_point_without_blocking"] = matrix_angles(net, rule)
    return out


def kp_decay(folder: Path) -> dict[str, Any]:
    config, rule, net, data, start = load_run(folder)
    steps = math.ceil(data.n_train / config.batch_size)
    rows = []
    for a, b in zip(start.weight_layers, net.weight_layers, strict=True):
        d0 = float(np.linalg.norm(rule.feedback_matrix(a) - rule.alignment_target(start, a)))
        w1 = float(np.linalg.norm(rule.alignment_target(net, b)))
        d1 = float(np.linalg.norm(rule.feedback_matrix(b) - rule.alignment_target(net, b)))
        w0 = float(np.linalg.norm(rule.alignment_target(start, a)))
        rows.append(
            {"layer": b.name, "D_end_over_D_start": d1 / d0, "W_end_over_W_start": w1 / w0, "D_end_over_W_end": d1 / w1}
        )
    return {"decay_leaves": kp_left(config, steps), "last": matrix_angles(net, rule), "layers": rows}


def fa_alignment(folder: Path) -> dict[str, Any]:
    config, rule, net, data, start = load_run(folder)
    c = kp_left(config, math.ceil(data.n_train / config.batch_size))
    rows = []
    for a, b in zip(start.weight_layers, net.weight_layers, strict=True):
        w0, w1, fb = rule.alignment_target(start, a), rule.alignment_target(net, b), rule.feedback_matrix(b)
        rows.append(
            {
                "layer": b.name,
                "B_to_learned": angle(fb, w1 - c * w0),
                "B_to_start": angle(fb, w0),
                "start_share": float(c * np.linalg.norm(w0) / np.linalg.norm(w1)),
            }
        )
    return {"decay_leaves": c, "last": matrix_angles(net, rule), "layers": rows}


def layer_table(found: dict[str, Any], columns: list[tuple[str, str, str]]) -> str:
    """One line per layer of ``found`` (:func:`kp_decay`'s or :func:`fa_alignment`'s): its name, its
    last matrix angle, then each ``(header, key of the layer's row, format spec)`` of ``columns``."""
    rows = [
        [row["layer"], f"{a:.1f}", *(format(row[key], spec) for _, key, spec in columns)]
        for a, row in zip(found["last"], found["layers"], strict=True)
    ]
    return table(["layer", "angle", *(header for header, _, _ in columns)], rows, "<>" + ">" * len(columns))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a comparison's --out folder")
    p.add_argument("--rules", nargs="+", default=["wm", "kp", "fa"], choices=["wm", "kp", "fa"])
    p.add_argument("--passes", type=int, default=150, help="mirror passes to the fixed point (λ_B = 0.05 each)")
    p.add_argument("--sigma", type=float, help="the mirror noise's σ for the fixed points (default: the run's)")
    p.add_argument("--json", type=Path, help="also write every number here")
    args = p.parse_args(argv)
    found: dict[str, Any] = {}
    for rule in args.rules:
        folder = args.run / rule
        if not (folder / "checkpoint.npz").is_file():
            print(f"angle_causes: no {folder}/checkpoint.npz; skipping {rule}", file=sys.stderr)
            continue
        if rule == "wm":
            r = found["wm"] = wm_fixed_points(folder, args.passes, args.sigma)
            blocked = "with" if r["bias_blocking_in_run"] else "without"
            print(f"WM ({blocked} bias-blocking in the run): matrix angles per layer, input to output, degrees")
            print("  last epoch of the run:            " + " ".join(f"{a:4.0f}" for a in r["last"]))
            print(f"  fixed points at the final weights, mirror noise of σ = {r['sigma']:g}:")
            for key, name in (("fixed_point_without_blocking", "without"), ("fixed_point_with_blocking", "with")):
                print(f"  fixed point {name:>7} bias-blocking: " + " ".join(f"{a:4.0f}" for a in r[key]))
        elif rule == "fa":
            r = found["fa"] = fa_alignment(folder)
            print(f"FA: W = c W₀ + G with c = {r['decay_leaves']:.2e}; angles of B (degrees) to G and to W₀")
            print(
                layer_table(
                    r,
                    [
                        ("to G", "B_to_learned", ".1f"),
                        ("to W₀", "B_to_start", ".1f"),
                        ("‖c W₀‖/‖W‖", "start_share", ".2e"),
                    ],
                )
            )
        else:
            r = found["kp"] = kp_decay(folder)
            print(f"KP: decay alone leaves {r['decay_leaves']:.2e} of W − Bᵀ over the run")
            print(
                layer_table(
                    r,
                    [
                        ("‖D‖/‖D₀‖", "D_end_over_D_start", ".2e"),
                        ("‖W‖/‖W₀‖", "W_end_over_W_start", ".3f"),
                        ("‖D‖/‖W‖", "D_end_over_W_end", ".2e"),
                    ],
                )
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(found, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
