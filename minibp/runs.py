"""The run folder: what a run keeps on disk, and the checks that keep a run from losing it.

``<out>/<rule>/`` holds ``config.json`` (every setting), ``metrics.jsonl`` (one record per
epoch, appended and flushed as each epoch ends) and ``checkpoint.npz`` (:mod:`minibp.checkpoint`);
a comparison's ``<out>/`` holds ``compare.json`` (its rules and each rule's settings). Every
file is written atomically or appended line by line, so a crash never leaves half a file.

Before a run starts, :func:`check_run_folder` refuses to overwrite one it would lose, and
before it resumes, :func:`check_resumable` refuses settings that would not continue it.
:class:`StopFlag` turns Ctrl-C and SIGTERM into a request to stop after the current step.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from .checkpoint import read_meta
from .config import RUNTIME_SETTINGS, TrainConfig

Record = dict[str, Any]


class JsonLines:
    """Appends one JSON object per line and flushes, so a killed run keeps every finished epoch."""

    def __init__(self, path: Path | None, records: Sequence[Record] = ()) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
            os.replace(tmp, path)

    def write(self, record: Record) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: to a temporary file in the same folder, then rename. The temporary
    file is this process's and thread's own, so writers that share a folder never meet in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def as_read_now(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A saved run's settings as minibp reads them today: a setting added after the run was saved
    takes the default it has for the run's model (``norm`` is ``"none"`` for ``cnn``, ``"batch"`` for
    the ResNets), as when the run loads; keys minibp does not know are kept as they are."""
    known = {f.name for f in fields(TrainConfig)}
    try:
        read = TrainConfig(**{k: v for k, v in saved.items() if k in known}).to_dict()
    except (TypeError, ValueError):  # settings that no longer load: compare them as written
        read = {**TrainConfig().to_dict(), **saved}
    return {**read, **{k: v for k, v in saved.items() if k not in known}}


def settings_diff(saved: Mapping[str, Any], config: TrainConfig) -> str:
    """The settings in which ``config`` differs from a saved run's ``saved`` ones, as text ("" if none);
    :data:`RUNTIME_SETTINGS` don't count."""
    now = config.to_dict()
    saved = as_read_now(saved)
    diff = sorted(k for k in set(saved) | set(now) if k not in RUNTIME_SETTINGS and saved.get(k) != now.get(k))
    return ", ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in diff)


def check_resumable(saved: dict[str, Any], config: TrainConfig, where: Path) -> None:
    """Raise if ``config`` would not continue the run saved with ``saved`` (its config.json)."""
    shown = settings_diff(saved, config)
    if shown:
        raise ValueError(
            f"cannot resume {where}: its settings differ ({shown}); resume with the saved config "
            f"(only {', '.join(RUNTIME_SETTINGS)} may change) or start a new run in another --out"
        )


def check_run_folder(run_dir: Path, config: TrainConfig) -> None:
    """Raise if starting ``config`` afresh in ``run_dir`` would lose a run there: an unfinished
    one (it should be resumed), or a finished one with other settings. A finished run with the
    same settings may be overwritten: training again gives the same numbers (on NumPy exactly)."""
    ckpt_path = run_dir / "checkpoint.npz"
    if not ckpt_path.exists():
        return
    at = read_meta(ckpt_path)
    if not at.get("finished"):
        raise FileExistsError(
            f"{run_dir} holds an unfinished run (stopped at epoch {at['epoch']}, step {at['step']}): continue "
            "it with --resume, or start afresh in another --out (or delete that folder)"
        )
    saved = at.get("config")
    if saved is None and (run_dir / "config.json").is_file():  # a checkpoint that does not carry its config
        saved = json.loads((run_dir / "config.json").read_text())
    shown = settings_diff(saved or {}, config)
    if shown:
        raise FileExistsError(
            f"{run_dir} holds a finished run with other settings ({shown}): start this one in another --out "
            "(or delete that folder); --resume with that --out prints the finished run's result"
        )


class StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM (a cluster's pre-emption, ``kill``) asks the run to stop after the
    current step, with a checkpoint; a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: bool = True) -> None:
        self.requested, self.announce = False, announce
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:  # one rank of a data-parallel run speaks for all
            print("\nminibp: stopping after this step to save a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


#: the file in a ``compare``'s ``--out`` that records its rules and each rule's settings
PLAN_FILE = "compare.json"


def read_plan(out: str | Path) -> dict[str, Any] | None:
    """``<out>/compare.json``: ``{"rules": [...], "configs": {rule: settings}}``, or None if there is none."""
    path = Path(out) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text())
        return {"rules": list(plan["rules"]), "configs": dict(plan["configs"])}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is damaged ({err}): delete it, and resume each rule with --rule") from None


def write_plan(out: str | Path, configs: Mapping[str, TrainConfig], keep: Mapping[str, Any] | None = None) -> None:
    """Write ``<out>/compare.json``: the rules of ``configs`` and each one's settings, after those of
    the plan ``keep`` (a :func:`read_plan`), whose other rules stay listed."""
    kept = keep or {"rules": [], "configs": {}}
    order = list(kept["rules"]) + [r for r in configs if r not in kept["rules"]]
    settings = {**kept["configs"], **{r: cfg.to_dict() for r, cfg in configs.items()}}
    write_json(Path(out) / PLAN_FILE, {"rules": order, "configs": {r: settings[r] for r in order}})
