"""Figures in the style of the paper's Fig 3 (test error per epoch, one line per rule)
and Fig 4 (matrix and delta angles per layer, input layers to output layers in a colour ramp)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .rules import PAPER_RULES, RULES  # noqa: E402
from .runs import read_plan  # noqa: E402

#: one colour for each rule, fixed so every figure reads the same: the paper's five, then the
#: family's six in matplotlib's remaining "tab10" colours, so that all eleven in one figure differ
RULE_COLORS = {
    "bp": "#222222",
    "fa": "#1f77b4",
    "ss": "#2ca02c",
    "wm": "#d62728",
    "kp": "#ff7f0e",
    "dfa": "#9467bd",
    "frsf": "#8c564b",
    "brsf": "#e377c2",
    "sa": "#7f7f7f",
    "aa": "#bcbd22",
    "ia": "#17becf",
}

#: what each record of ``metrics.jsonl`` needs for the figures
PLOTTED = ("epoch", "test_accuracy", "matrix_angle", "delta_angle")


def rule_label(key: str) -> str:
    """A rule's label in figures ("WM" for ``wm``), or ``key`` itself for anything else."""
    return RULES[key].label if key in RULES else key


def _layer_colors(n: int) -> list[Any]:
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def plot_angles(ax: Any, history: Sequence[Mapping[str, Any]], key: str, title: str) -> None:
    """One line per layer of ``record[key]`` over epochs, input (dark) to output (light).

    Colours follow the weight layers (``matrix_angle``), so layer ``i``'s delta angle
    has the colour of its matrix angle."""
    epochs = [r["epoch"] for r in history]
    colors = _layer_colors(len(history[0]["matrix_angle"]))
    for i in range(len(history[0][key])):
        ax.plot(epochs, [r[key][i] for r in history], color=colors[i], lw=1.5, label=f"layer {i + 1}")
    ax.set_title(title, fontsize=9)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylim(0, 95)
    ax.set_yticks([0, 30, 60, 90])
    ax.grid(alpha=0.3)


def plot_comparison(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, title: str = "") -> Path:
    """Save a figure with test error per epoch (Fig 3) and, per rule, matrix angles (Fig 4a, c, e)
    and delta angles (Fig 4b, d, f) per layer. Returns the path written."""
    rules = list(histories)
    fig = plt.figure(figsize=(3.0 * max(len(rules), 2), 8.5))
    grid = fig.add_gridspec(3, len(rules))
    ax = fig.add_subplot(grid[0, :])
    for rule, hist in histories.items():
        ax.plot(
            [r["epoch"] for r in hist],
            [100 * (1 - r["test_accuracy"]) for r in hist],
            color=RULE_COLORS.get(rule),
            lw=2,
            label=rule_label(rule),
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("top-1 test error (%)")
    ax.set_yscale("log")
    ax.set_title(f"Test error{f' ({title})' if title else ''}")
    ax.legend(ncol=len(rules), frameon=False)
    ax.grid(alpha=0.3, which="both")
    for j, (rule, hist) in enumerate(histories.items()):
        name = rule_label(rule)
        a = fig.add_subplot(grid[1, j])
        plot_angles(a, hist, "matrix_angle", f"{name}: matrix angle ∠(B, Wᵀ)")
        if j == 0:
            a.set_ylabel("degrees")
        a.legend(fontsize=7, frameon=False)
        d = fig.add_subplot(grid[2, j])
        plot_angles(d, hist, "delta_angle", f"{name}: delta angle ∠(δ, δ_BP)")
        d.set_xlabel("epoch")
        if j == 0:
            d.set_ylabel("degrees")
    fig.subplots_adjust(left=0.06, right=0.98, top=0.95, bottom=0.06, hspace=0.45, wspace=0.25)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def load_runs(paths: Sequence[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """Histories from run folders: a folder with ``metrics.jsonl`` is one run; a folder whose
    subfolders have one (a ``compare``'s ``--out``) is several: the rules its ``compare.json``
    lists, where it has one, so that runs left there by an earlier comparison are not mixed in.
    Keys are rule names, or ``folder/rule`` where two runs would share a name."""
    found: list[Path] = []
    for path in map(Path, paths):
        plan = read_plan(path) if path.is_dir() else None
        inside = [m.parent for m in sorted(path.glob("*/metrics.jsonl"))] if path.is_dir() else []
        if plan is not None:
            inside = [run for run in inside if run.name in plan["rules"]]
        if (path / "metrics.jsonl").is_file():
            found.append(path)
        elif inside:
            found += inside
        else:
            raise FileNotFoundError(f"{path} holds no metrics.jsonl, nor subfolders with one: give run folders")
    order = list(RULES)  # bp, fa, ss, wm, kp: the paper's order, then the rules added after them
    found.sort(key=lambda run: order.index(_rule_of(run)) if _rule_of(run) in order else len(order))
    rules = [_rule_of(run) for run in found]
    runs: dict[str, list[dict[str, Any]]] = {}
    for run, rule in zip(found, rules):
        key = rule if rules.count(rule) == 1 else f"{run.parent.name}/{rule}"
        lines = [line for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        try:
            runs[key] = [json.loads(line) for line in lines]
        except json.JSONDecodeError as err:
            raise ValueError(f"{run / 'metrics.jsonl'} has a line that is not JSON ({err})") from None
        if not runs[key]:
            raise ValueError(f"{run / 'metrics.jsonl'} is empty: the run has not finished an epoch")
        for i, record in enumerate(runs[key], 1):
            missing = [k for k in PLOTTED if not isinstance(record, dict) or k not in record]
            if missing:
                raise ValueError(
                    f"{run / 'metrics.jsonl'}, line {i}, lacks {', '.join(missing)}: each line must be a record "
                    f"that minibp train writes, with {', '.join(PLOTTED)}; restore the file or rerun that rule"
                )
    return runs


def _rule_of(run: Path) -> str:
    config = run / "config.json"
    return str(json.loads(config.read_text()).get("rule", run.name)) if config.is_file() else run.name


def _save_both(fig: Any, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _rule_key(label: str) -> str:
    return label.rsplit("/", 1)[-1]


def plot_test_error(runs: Mapping[str, Sequence[Mapping[str, Any]]], stem: str | Path, title: str = "") -> list[Path]:
    """Fig 3: top-1 test error (%) per epoch, one line per run. Saves ``stem``.png and .pdf."""
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    keys = [_rule_key(label) for label in runs]
    # each rule its own colour where each appears once; else matplotlib's cycle, 20 colours where needed
    by_rule = len(set(keys)) == len(keys) and all(k in RULE_COLORS for k in keys)
    if not by_rule and len(runs) > 10:
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    for label, hist in runs.items():
        rule = _rule_key(label)
        ax.plot(
            [r["epoch"] for r in hist],
            [100 * (1 - r["test_accuracy"]) for r in hist],
            color=RULE_COLORS.get(rule) if by_rule else None,
            ls="-" if rule in PAPER_RULES or not by_rule else "--",  # the paper's rules solid, the family's dashed
            lw=1.8,
            label=rule_label(label),
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("top-1 test error (%)")
    ax.set_yscale("log")  # the untrained network's 90 % and the last epochs' few % on one axis
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    low, high = ax.get_ylim()
    leading = "23456789" if high / low < 10 else "25"  # within a decade every minor tick gets its number
    label = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in leading else "")
    ax.yaxis.set_minor_formatter(label)
    ax.set_title(title or "Test error", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if len(runs) > 5:  # beside the axes, where it hides no line
        ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        ax.legend(frameon=False)
    return _save_both(fig, Path(stem))


def plot_alignment(runs: Mapping[str, Sequence[Mapping[str, Any]]], stem: str | Path, title: str = "") -> list[Path]:
    """Fig 4: matrix angles (top row) and delta angles (bottom row) per layer over training,
    one column per run (backprop, whose angles are all zero, left out); layers run from input
    (dark) to output (light) of a colour ramp. Saves ``stem``.png and .pdf."""
    shown = {k: h for k, h in runs.items() if _rule_key(k) != "bp"} or dict(runs)
    cols = len(shown)
    fig, axes = plt.subplots(2, cols, figsize=(3.0 * cols + 0.8, 5.8), squeeze=False, sharey=True, layout="constrained")
    n_layers = max(len(h[0]["matrix_angle"]) for h in shown.values())
    for j, (label, hist) in enumerate(shown.items()):
        name = rule_label(label)
        plot_angles(axes[0, j], hist, "matrix_angle", f"{name}: matrix angle ∠(B, Wᵀ)")
        plot_angles(axes[1, j], hist, "delta_angle", f"{name}: delta angle ∠(δ, δ_BP)")
        axes[1, j].set_xlabel("epoch")
    axes[0, 0].set_ylabel("degrees")
    axes[1, 0].set_ylabel("degrees")
    # one colour per weight layer, as in plot_angles: a discrete ramp from input (dark) to output (light)
    bounds = [i + 0.5 for i in range(n_layers + 1)]
    ramp = matplotlib.cm.ScalarMappable(
        cmap=matplotlib.colors.ListedColormap(_layer_colors(n_layers)),
        norm=matplotlib.colors.BoundaryNorm(bounds, n_layers),
    )
    bar = fig.colorbar(ramp, ax=axes, fraction=0.03, pad=0.02)
    step = max(1, n_layers // 10)
    bar.set_ticks(list(range(1, n_layers + 1, step)))
    bar.set_label("weight layer (input → output)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_both(fig, Path(stem))


def plot_paper_figures(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], folder: str | Path, title: str = ""
) -> list[Path]:
    """Fig 3 (``fig3_test_error``) and Fig 4 (``fig4_angles``) of ``runs`` in ``folder``, PNG and PDF."""
    folder = Path(folder)
    return [
        *plot_test_error(runs, folder / "fig3_test_error", title),
        *plot_alignment(runs, folder / "fig4_angles", title),
    ]


def save_figure(fig: Any, name: str) -> Path | None:
    """Save ``fig`` as ``<folder>/<name>.png`` when ``$MINIBP_FIGURES`` names a folder.

    The notebooks call this for every plot, so ``python notebooks/build.py --run --figures
    figures`` regenerates the README's figures; in a normal Jupyter session it does nothing.
    """
    folder = os.environ.get("MINIBP_FIGURES")
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
