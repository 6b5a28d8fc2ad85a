"""The command line: ``minibp train``, ``minibp compare``, ``minibp plot`` and ``minibp presets``.

Every field of :class:`~minibp.train.TrainConfig` is a flag (``--weight-decay``,
``--wm-sigma``, …). Settings are layered: a ``--preset`` first, then ``--config
FILE.json``, then the flags given on the command line. ``--resume`` continues the run in
``--out`` from its checkpoint with its saved settings (flags may change only the
runtime ones: backend, data folder, workers, logging and checkpoint intervals; others may
be repeated with their saved values). A ``compare`` resumes the rules its ``compare.json``
lists, each with its own saved settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .compare import compare
from .config import RUNTIME_SETTINGS, TrainConfig, default_text
from .parallel import LaunchError, abort_world, launched_rank, launched_size, several_ranks, world
from .presets import PRESETS, describe_presets
from .rules import PAPER_RULES, RULES
from .runs import read_plan, settings_diff
from .settings import choices_of, describe_range, settings_of
from .train import TrainingInterrupted, TrainingStopped, train


def _help(f: Any) -> str:
    """A setting's help line: what it is, its range or choices, and its default."""
    text = f.metadata["help"]
    if f.name == "rule":
        text += ": " + "; ".join(f"{name} ({cls.title})" for name, cls in RULES.items())
    else:
        choices = choices_of(f)
        if choices is not None and f.metadata["kind"] is not bool:
            text += f": {', '.join(choices)}"
    words = describe_range(f)
    if words:
        text += f"; {words}"
    default = default_text(f.name) if f.default is None else f.default
    return f"{text} (default: {default})".replace("%", "%%")


def _add_config_flags(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """A flag for every setting of :class:`TrainConfig` (``wm_sigma`` → ``--wm-sigma``), its help,
    type and choices taken from the setting's declaration."""
    for f in settings_of(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind, item = f.metadata["kind"], f.metadata["item"]
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f)}
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif kind is tuple:
            p.add_argument(flag, nargs="*", type=item, **kw)
        else:
            p.add_argument(flag, type=kind, choices=choices_of(f), **kw)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="minibp",
        description="Deep learning without weight transport: train networks under "
        + ", ".join(cls.label for cls in RULES.values())
        + ".",
    )
    sub = top.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--preset", choices=sorted(PRESETS), help="a named setup (see `minibp presets`)")
    common.add_argument("--config", type=Path, help="JSON file of settings (override the preset; flags override it)")
    common.add_argument("--out", type=Path, default=Path("runs"), help="output folder (default: runs)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint, with its saved settings"
    )
    t = sub.add_parser("train", parents=[common], help="train one network under one rule")
    _add_config_flags(t)
    c = sub.add_parser("compare", parents=[common], help="train several rules from the same seed and initial weights")
    c.add_argument(
        "--rules",
        nargs="+",
        choices=[*RULES, "all"],
        help=f"rules to compare, or all (default: the paper's five, {' '.join(PAPER_RULES)}; "
        "with --resume, those of the comparison in --out)",
    )
    _add_config_flags(c, skip=("rule",))
    pl = sub.add_parser("plot", help="draw Fig 3 (test error) and Fig 4 (angles) from run folders, as PNG and PDF")
    pl.add_argument("runs", nargs="+", type=Path, help="run folders: a compare's --out, or single rules' folders")
    pl.add_argument("--out", type=Path, help="folder for the figures (default: the first run folder)")
    pl.add_argument("--title", default="", help="title over the figures")
    sub.add_parser("presets", help="list the presets and their settings")
    return top


def _read_settings(path: Path) -> dict[str, Any]:
    names = {f.name for f in settings_of(TrainConfig)}
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"minibp: config file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"minibp: config file {path} is not valid JSON: {err}") from None
    except (UnicodeDecodeError, IsADirectoryError) as err:
        raise SystemExit(f"minibp: config file {path} is not a UTF-8 text file of JSON: {err}") from None
    if not isinstance(loaded, dict):
        raise SystemExit(f"minibp: config file {path} must hold a JSON object of settings")
    unknown = sorted(set(loaded) - names)
    if unknown:
        raise SystemExit(f"minibp: unknown setting(s) {unknown} in {path}; known: {sorted(names)}")
    return loaded


def _saved_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The saved settings of the run ``--resume`` continues: those ``<out>/compare.json`` holds for
    the comparison's first rule, else ``<out>/<rule>/config.json``."""
    plan = read_plan(args.out) if args.command == "compare" else None
    if plan is not None and plan["rules"]:
        return plan["configs"][plan["rules"][0]]
    return _read_settings(_saved_run(args))


def _saved_run(args: argparse.Namespace) -> Path:
    """The config.json of the run ``--resume`` continues: ``<out>/<rule>/config.json``."""
    rule = getattr(args, "rule", None)
    if rule is not None:
        if not (args.out / rule / "config.json").is_file():
            present = sorted(p.parent.name for p in args.out.glob("*/config.json"))
            raise SystemExit(
                f"minibp: nothing to resume for rule {rule} in {args.out}"
                + (f": it holds runs of {', '.join(present)}" if present else ": it holds no runs; check --out")
            )
        return args.out / rule / "config.json"
    found = sorted(args.out.glob("*/config.json"))
    if not found:
        raise SystemExit(f"minibp: nothing to resume in {args.out}: no <rule>/config.json there; check --out")
    if args.command == "train" and len(found) > 1:
        rules = [p.parent.name for p in found]
        raise SystemExit(f"minibp: {args.out} holds several runs ({', '.join(rules)}): say which with --rule")
    return found[0]


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags on the command line (not their defaults)."""
    names = {f.name for f in settings_of(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def _config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, dict[str, Any]]]:
    """The run's config, and per-rule settings for ``compare`` (from a preset that has them).

    Layers, later winning: the preset, its settings for the rule, ``--config``, the flags.
    With ``--resume``: the saved config.json, then runtime flags only.
    """
    flags = _flags(args)
    if args.resume:
        if args.preset or args.config:
            raise SystemExit("minibp: --resume takes the run's saved settings; leave out --preset and --config")
        saved = _saved_settings(args)
        given = {k: v for k, v in flags.items() if k not in RUNTIME_SETTINGS and k != "rule"}
        # flags that repeat a saved value are welcome; those that would change one are not
        fixed = sorted(k for k in given if settings_diff(saved, TrainConfig(**{**saved, k: given[k]})))
        if fixed:
            raise SystemExit(
                f"minibp: --resume continues a run with its saved settings; it cannot change {fixed} "
                f"(only {', '.join(RUNTIME_SETTINGS)}); start a new run in another --out instead"
            )
        return TrainConfig(**{**saved, **flags}), {}
    preset = PRESETS[args.preset] if args.preset else None
    from_file = _read_settings(args.config) if args.config is not None else {}
    given = {**from_file, **flags}
    base = dict(preset.settings) if preset else {}
    per_rule: dict[str, dict[str, Any]] = {}
    if preset is not None:
        per_rule = {
            rule: {k: v for k, v in extra.items() if k not in given} for rule, extra in preset.rule_settings.items()
        }
    if args.command == "train":
        rule = given.get("rule", base.get("rule", "bp"))
        base.update(per_rule.get(rule, {}) if isinstance(rule, str) else {})  # TrainConfig names a bad rule
    return TrainConfig(**{**base, **given}), per_rule


def _plot(args: argparse.Namespace) -> None:
    from .plots import load_runs, plot_paper_figures  # noqa: PLC0415 (matplotlib only when plotting)

    runs = load_runs(args.runs)
    for path in plot_paper_figures(runs, args.out or args.runs[0], title=args.title):
        print(f"figure: {path}")


def _resumed_rules(args: argparse.Namespace) -> list[str] | None:
    """With ``compare --resume`` and no ``--rules``: the rules of the comparison saved in ``--out``."""
    plan = read_plan(args.out) if args.resume else None
    return plan["rules"] if plan is not None else None


def _again(args: argparse.Namespace, rule: str | None) -> str:
    """The command that continues an interrupted run."""
    ranks = launched_size()
    launch = f"mpiexec -n {ranks} " if ranks > 1 else ""
    again = f"{launch}minibp {args.command} --out {shlex.quote(str(args.out))} --resume"
    return again + (f" --rule {rule}" if args.command == "train" and rule else "")


#: errors every rank of a data-parallel run meets alike (its settings, its run folder): rank 0 reports them
_SHARED_ERRORS = (ValueError, FileExistsError, FileNotFoundError, NotADirectoryError, TrainingStopped, LaunchError)


def main(argv: Sequence[str] | None = None) -> int:
    """``minibp ...``: returns the exit status. Under ``mpiexec -n N`` every rank runs it; rank 0 prints."""
    rank = launched_rank()
    if rank != 0:  # the other ranks of a data-parallel run say nothing of what rank 0 says
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    args = parser().parse_args(argv)
    if args.command == "presets":
        print(describe_presets())
        return 0
    config_rule: str | None = None
    try:
        if args.command == "plot":
            _plot(args)
            return 0
        config, per_rule = _config(args)
        config_rule = config.rule
        world(config.backend, config.transport, config.collective_timeout)  # the ranks, if mpiexec started several
        if args.command == "train":
            _, history = train(config, out=args.out, progress=not args.quiet, resume=args.resume)
            last = history[-1]
            print(
                f"{config.rule}: test accuracy {last['test_accuracy']:.4f}, "
                f"matrix angles {[round(a, 1) for a in last['matrix_angle']]}, "
                f"delta angles {[round(a, 1) for a in last['delta_angle']]}"
            )
            print(f"metrics: {args.out / config.rule / 'metrics.jsonl'}")
        else:
            rules = args.rules or _resumed_rules(args) or list(PAPER_RULES)
            rules = list(RULES) if rules == ["all"] else rules
            result = compare(
                config, rules, out=args.out, progress=not args.quiet, resume=args.resume, per_rule=per_rule
            )
            print(result.table())
            print(f"summary: {args.out / 'summary.json'}\nfigure:  {args.out / 'compare.png'}")
    except TrainingInterrupted as err:
        if rank == 0:
            print(f"minibp: {err}\nminibp: continue with: {_again(args, config_rule)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # outside a training loop: loading data, evaluating, plotting
        started = args.command in ("train", "compare") and any(Path(args.out).glob("*/checkpoint.npz"))
        hint = f"\nminibp: continue with: {_again(args, config_rule)}" if started else ""
        print(f"minibp: interrupted{hint}", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as err:
        if rank == 0 or not isinstance(err, _SHARED_ERRORS):
            kind = "training stopped" if isinstance(err, TrainingStopped) else "error"
            where = f"rank {rank}: " if rank else ""
            print(f"minibp: {where}{kind}: {err}", file=sys.stderr)
        if not isinstance(err, _SHARED_ERRORS):  # this rank's own failure: the others must not wait for it
            abort_world(f"minibp: rank {rank} stopped every rank after this error")
        return 2
    except Exception:
        if several_ranks():  # a failure of one rank: show it, then stop the others rather than leave them waiting
            traceback.print_exc()
            abort_world(f"minibp: rank {rank} stopped every rank after the error above")
        raise
    return 0
