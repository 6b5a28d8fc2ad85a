"""Several rules trained from the same start: :func:`compare`, and its result, :class:`Comparison`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import set_backend
from .checkpoint import read_meta
from .config import RUNTIME_SETTINGS, TrainConfig
from .data import BatchSource
from .parallel import Group, world
from .rules import PAPER_RULES
from .runs import Record, check_run_folder, read_plan, write_json, write_plan
from .train import TrainingDiverged, data_for, train


@dataclass
class Comparison:
    """The result of :func:`compare`: one history per rule."""

    config: TrainConfig
    histories: dict[str, list[Record]] = field(default_factory=dict)

    def summary(self) -> dict[str, Record]:
        return {rule: hist[-1] for rule, hist in self.histories.items()}

    def save(self, out: str | Path, *, plot: bool = True) -> None:
        """``<out>/summary.json`` (rule → last record) and, with ``plot``, ``<out>/compare.png``."""
        write_json(Path(out) / "summary.json", self.summary())
        if plot:
            from .plots import plot_comparison  # noqa: PLC0415 (matplotlib only when plotting)

            title = f"{self.config.dataset}, {self.config.model}"
            plot_comparison(self.histories, Path(out) / "compare.png", title=title)

    def table(self) -> str:
        head = f"{'rule':<5} {'test acc':>8} {'train loss':>10} {'time s':>7}  matrix angle ° (in→out)   delta angle °"
        lines = [head, "-" * len(head)]
        for rule, hist in self.histories.items():
            last = hist[-1]
            if "diverged" in last:
                lines.append(f"{rule:<5} diverged after epoch {last['epoch']}: {last['diverged']}")
                continue
            secs = sum(r["seconds"] for r in hist)
            ma = " ".join(f"{a:5.1f}" for a in last["matrix_angle"])
            da = " ".join(f"{a:5.1f}" for a in last["delta_angle"])
            lines.append(
                f"{rule:<5} {last['test_accuracy']:8.4f} {last['train_loss']:10.4f} {secs:7.2f}  {ma:<24}  {da}"
            )
        return "\n".join(lines)


def compare(
    config: TrainConfig,
    rules: Sequence[str] = PAPER_RULES,
    *,
    data: BatchSource | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    plot: bool = True,
    resume: bool = False,
    per_rule: Mapping[str, Mapping[str, Any]] | None = None,
    plan: bool = True,
    group: Group | None = None,
) -> Comparison:
    """Train every rule in ``rules`` (by default the paper's five) from the same seed: the same
    initial ``W``, the same initial random ``B`` (FA, WM, KP) and the same order of examples.

    With ``out``: each run's ``<out>/<rule>/metrics.jsonl``, ``<out>/summary.json``
    (rule → last epoch's record), ``<out>/compare.png`` (Figs 3–4 style) and
    ``<out>/compare.json`` (the rules and each one's settings, written before any trains). A
    rule whose loss diverges keeps the epochs it finished; its last record gets a ``diverged``
    message and the comparison goes on with the other rules. ``per_rule`` adds settings for
    single rules (a preset's per-rule learning rates). Every rule's folder is checked before
    any rule trains: an unfinished run there, or a finished one with other settings, stops the
    comparison before it starts (see :func:`check_run_folder`).

    Ctrl-C stops the whole comparison (after saving the current rule's checkpoint). With
    ``resume=True`` every rule continues with the settings ``compare.json`` saved for it
    (``config`` may change only :data:`RUNTIME_SETTINGS`): rules with a checkpoint from it,
    finished rules are read back, and the rest start.

    ``plan=False`` leaves ``compare.json`` to the caller (:func:`write_plan`): for processes that
    share ``out``, each training some of the rules.

    Under ``mpiexec -n N`` (or with a ``group`` of ranks) the N ranks train every rule together
    (:func:`~minibp.train.train`), and rank 0 alone writes ``out``.
    """
    set_backend(config.backend)  # a backend that cannot start stops the comparison before anything is written
    if group is None:
        group = world(config.backend, config.transport, config.collective_timeout)
    per_rule = per_rule or {}
    plans = {rule: dataclasses.replace(config, rule=rule, **per_rule.get(rule, {})) for rule in rules}
    saved_plan = read_plan(out) if resume and out is not None else None
    runtime = {k: getattr(config, k) for k in RUNTIME_SETTINGS}  # what a resumed rule may take from config
    if saved_plan is not None:
        for rule in rules:
            if rule in saved_plan["configs"]:
                plans[rule] = TrainConfig(**{**saved_plan["configs"][rule], **runtime})
    resumed: dict[str, bool] = {}
    for rule in rules:  # look at every folder before any rule trains
        ckpt = Path(out) / rule / "checkpoint.npz" if out is not None else None
        resumed[rule] = resume and ckpt is not None and ckpt.exists()
        if resumed[rule] and saved_plan is None:  # a folder from before compare.json: its own config.json
            saved = json.loads((ckpt.parent / "config.json").read_text())
            plans[rule] = TrainConfig(**{**saved, **runtime})
        elif not resumed[rule]:
            plans[rule].check_new_run()
            if out is not None:
                check_run_folder(Path(out) / rule, plans[rule])
    if out is not None and plan and group.is_root:
        write_plan(out, plans, keep=saved_plan)  # resuming some rules keeps the others' entries
    result = Comparison(config)
    with data_for(config, data, group.local_size) as source:
        for rule in rules:
            cfg = plans[rule]
            if resumed[rule]:
                meta = read_meta(Path(out) / rule / "checkpoint.npz")  # type: ignore[arg-type]
                if meta.get("finished"):
                    result.histories[rule] = meta["history"]
                    continue
            try:
                _, result.histories[rule] = train(
                    cfg, data=source, out=out, progress=progress, resume=resumed[rule], group=group
                )
            except TrainingDiverged as err:  # a result, not a crash: record it and go on with the next rule
                last = dict(err.history[-1], diverged=str(err))
                result.histories[rule] = [*err.history[:-1], last]
    if out is not None and group.is_root:
        result.save(out, plot=plot)
    return result
