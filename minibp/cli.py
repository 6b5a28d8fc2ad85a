"""The command line: ``minibp train`` and ``minibp compare``.

Every field of :class:`~minibp.train.TrainConfig` is a flag (``--weight-decay``,
``--wm-sigma``, …); ``--config FILE.json`` sets several at once and flags given on
the command line override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .rules import RULES
from .train import TrainConfig, TrainingDiverged, compare, train

HELP = {
    "rule": "learning rule: bp (backprop), fa (feedback alignment), ss (sign-symmetry), "
    "wm (weight mirror), kp (Kolen-Pollack)",
    "dataset": "dataset name (digits: scikit-learn's 8x8 digits, no download)",
    "model": "model: mlp, cnn (LeNet-style), resnet20, resnet18, resnet50",
    "width": "base width of a convolutional model (0: its default: cnn 6, resnet20 16, resnet18/50 64)",
    "bn": "batch-norm placement in ResNets: after the ReLU (the paper's variant) or before it",
    "hidden": "hidden layer sizes of the MLP",
    "activation": "hidden activation: relu, tanh, sigmoid, rectified_tanh",
    "loss": "loss: cross_entropy or mse",
    "epochs": "training epochs",
    "batch_size": "examples per training step",
    "lr": "learning rate eta of eqs (4), (16), (17)",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay wd; the per-step decay of eq (16) is lambda = lr * wd",
    "schedule": "learning-rate schedule: constant, cosine or step",
    "milestones": "epochs at which the step schedule multiplies the rate by --gamma",
    "gamma": "factor of the step schedule",
    "seed": "random seed (weights, feedback weights, data order, mirror noise)",
    "dtype": "float32 or float64",
    "backend": "array module: numpy or cupy",
    "wm_sigma": "weight mirror: standard deviation of the mirror noise (eq 6-7)",
    "wm_lr": "weight mirror: learning rate eta_B of eq (7)",
    "wm_decay": "weight mirror: decay of B per mirror batch",
    "wm_batch_size": "weight mirror: noise samples per mirror batch",
    "wm_batches": "weight mirror: mirror batches after each mirroring step",
    "wm_every": "weight mirror: mirror after every N-th training step",
    "wm_bias_blocking": "weight mirror: block biases in mirror mode (eq 12)",
    "probe_size": "training examples the delta angle (Fig 4b) is measured on",
    "diverge_factor": "stop when a batch loss exceeds this multiple of the untrained network's loss",
}


def _add_config_flags(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kw: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f"{HELP.get(f.name, '')} (default: {default})",
        }
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, tuple):
            item = float if f.name == "milestones" else int
            p.add_argument(flag, nargs="*", type=item, **kw)
        elif f.name == "rule":
            p.add_argument(flag, choices=list(RULES), **kw)
        else:
            p.add_argument(flag, type=type(default), **kw)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="minibp",
        description="Deep learning without weight transport: train networks under BP, FA, SS, WM and KP.",
    )
    sub = top.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="JSON file of settings (flags override it)")
    common.add_argument("--out", type=Path, default=Path("runs"), help="output folder (default: runs)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    t = sub.add_parser("train", parents=[common], help="train one network under one rule")
    _add_config_flags(t)
    c = sub.add_parser("compare", parents=[common], help="train all rules from the same seed and initial weights")
    c.add_argument(
        "--rules", nargs="+", choices=list(RULES), default=list(RULES), help="rules to compare (default: all)"
    )
    _add_config_flags(c, skip=("rule",))
    return top


def _config(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = json.loads(args.config.read_text())
        except FileNotFoundError:
            raise SystemExit(f"minibp: config file {args.config} does not exist") from None
        except json.JSONDecodeError as err:
            raise SystemExit(f"minibp: config file {args.config} is not valid JSON: {err}") from None
        if not isinstance(loaded, dict):
            raise SystemExit(f"minibp: config file {args.config} must hold a JSON object of settings")
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise SystemExit(f"minibp: unknown setting(s) {unknown} in {args.config}; known: {sorted(names)}")
        values.update(loaded)
    values.update({k: v for k, v in vars(args).items() if k in names})
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = _config(args)
        if args.command == "train":
            _, history = train(config, out=args.out, progress=not args.quiet)
            last = history[-1]
            print(
                f"{config.rule}: test accuracy {last['test_accuracy']:.4f}, "
                f"matrix angles {[round(a, 1) for a in last['matrix_angle']]}, "
                f"delta angles {[round(a, 1) for a in last['delta_angle']]}"
            )
            print(f"metrics: {args.out / config.rule / 'metrics.jsonl'}")
        else:
            result = compare(config, args.rules, out=args.out, progress=not args.quiet)
            print(result.table())
            print(f"summary: {args.out / 'summary.json'}\nfigure:  {args.out / 'compare.png'}")
    except (ValueError, RuntimeError) as err:
        kind = "training stopped" if isinstance(err, TrainingDiverged) else "error"
        print(f"minibp: {kind}: {err}", file=sys.stderr)
        return 2
    return 0
