"""Regenerate the README's Fig 3/Fig 4 figures in ``figures/`` from runs that take minutes on a CPU.

    python scripts/make_figures.py            # all jobs (about 10 minutes on 2 cores)
    python scripts/make_figures.py digits-mlp # one job

Each job is a ``minibp compare`` of all five rules from one seed, written to
``runs/figures/<job>`` (with checkpoints: an interrupted job resumes where it stopped),
then drawn by ``minibp plot`` into ``figures/<job>_fig3_test_error.{png,pdf}`` and
``figures/<job>_fig4_angles.{png,pdf}`` (the default job also redraws
``figures/compare_digits.png``, the figure ``minibp compare`` makes). The settings of each job are below, so the
figures can be rebuilt exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minibp import TrainConfig, compare
from minibp.plots import load_runs, plot_comparison, plot_paper_figures

ROOT = Path(__file__).resolve().parent.parent

#: job name → (title, settings); every job runs all five rules
JOBS: dict[str, tuple[str, dict]] = {
    "digits-mlp": ("MLP 64-256-256-10 on digits (the default job)", {}),
    "digits-resnet20": (
        "ResNet-20 (width 8, batch norm after ReLU) on digits",
        {"model": "resnet20", "width": 8, "epochs": 20, "lr": 0.05, "weight_decay": 5e-3, "batch_size": 64},
    ),
}


def run_job(name: str, runs: Path, figures: Path, quiet: bool) -> list[Path]:
    """Train (or resume) one job's comparison and draw its two figures."""
    title, settings = JOBS[name]
    out = runs / name
    config = TrainConfig(**settings)
    resume = any(out.glob("*/checkpoint.npz"))
    compare(config, out=out, progress=not quiet, plot=False, resume=resume)
    runs = load_runs([out])
    paths = plot_paper_figures(runs, figures, title=title)
    if name == "digits-mlp":  # the all-in-one figure at the top of the README
        plot_comparison(runs, figures / "compare_digits.png", title="digits, mlp")
    renamed = []
    for path in paths:
        target = path.with_name(f"{name}_{path.name}")
        path.replace(target)
        renamed.append(target)
    return renamed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", nargs="*", help=f"jobs to run: {', '.join(JOBS)} (default: all)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "figures", help="where the runs go")
    p.add_argument("--figures", type=Path, default=ROOT / "figures", help="where the figures go")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    unknown = sorted(set(args.jobs) - set(JOBS))
    if unknown:
        p.error(f"unknown job(s) {unknown}: choose from {', '.join(JOBS)}")
    for name in args.jobs or list(JOBS):
        for path in run_job(name, args.runs, args.figures, args.quiet):
            print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
