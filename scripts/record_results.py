"""Run a ``minibp train`` or ``minibp compare`` command, or ``benchmarks/bench_repro.py``, and keep its
small artefacts, so that a reader can re-plot and check every training number the READMEs give.

    python scripts/record_results.py digits-cnn -- compare --model cnn
    python scripts/record_results.py fashion-lenet-10epochs-3seeds -- bench_repro fashion-lenet --epochs 10 --seeds 3

The first runs ``minibp compare --model cnn --out runs/results/digits-cnn --quiet`` (resuming it if
it was interrupted), the second ``python benchmarks/bench_repro.py fashion-lenet ... --out
runs/results/fashion-lenet-10epochs-3seeds --quiet`` (the same), and each copies into
``benchmarks/results/<name>/``, keeping the run folder's layout (``seed-<s>/`` for ``--seeds``):

* each rule's ``metrics.jsonl`` and ``config.json`` (``<rule>/``), and each comparison's
  ``summary.json`` and ``compare.json`` (with ``--seeds``, the top folder's ``summary.json`` holds
  the means and standard deviations over the seeds): no checkpoints;
* ``provenance.json``: the command, the minibp commit(s) (and whether the tree had changes), the
  date, the machine, the Python, NumPy and scikit-learn versions, and the name and SHA-256 of
  every data file the run read;
* ``table.txt``: what the command printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from minibp.data import ALIASES
from minibp.data.cifar import CIFAR10
from minibp.data.files import locate, sha256_of
from minibp.data.imagenet_small import source as imagenet_small_source
from minibp.data.mnist import FASHION_MNIST, MNIST

ROOT = Path(__file__).resolve().parent.parent
KEPT = ("metrics.jsonl", "config.json")


def data_files(dataset: str, data_dir: str) -> dict[str, str]:
    """Each file the dataset is read from, as ``path → SHA-256``."""
    dataset = ALIASES.get(dataset, dataset)
    if dataset == "digits":
        import sklearn  # noqa: PLC0415

        path = resources.files("sklearn.datasets") / "data" / "digits.csv.gz"
        return {f"sklearn {sklearn.__version__}: datasets/data/digits.csv.gz": sha256_of(Path(str(path)))}
    if dataset == "teacher":
        return {}  # drawn from the seed: no file
    sources = {"mnist": MNIST, "fashion-mnist": FASHION_MNIST, "cifar10": CIFAR10}
    if dataset in ("imagenet32", "imagenet64"):
        sources[dataset] = imagenet_small_source(int(dataset[-2:]))
    if dataset not in sources:
        raise SystemExit(f"record_results: no list of files for dataset {dataset!r}")
    src = sources[dataset]
    found = locate(src.subdir, src.files, data_dir or None, gunzipped_ok=src.gunzipped_ok)
    return {str(path): sha256_of(path) for path in found.values() if path is not None}


def machine() -> str:
    """The processor's name and core count, and the system."""
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        lines = info.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the results folder: benchmarks/results/NAME")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the minibp command (train|compare ...)")
    args = p.parse_args(argv)
    command = [c for c in args.command if c != "--"]
    if not command or command[0] not in ("train", "compare", "bench_repro"):
        p.error("give the minibp command after --, e.g. -- compare --model cnn (or -- bench_repro TASK ...)")
    if "--out" in command:
        p.error("leave out --out: the run goes to runs/results/NAME")
    head = git("rev-parse", "HEAD")  # the commit that trains, read before it starts
    out = ROOT / "runs" / "results" / args.name
    if command[0] == "bench_repro":
        script = Path("benchmarks") / "bench_repro.py"
        run = [sys.executable, str(ROOT / script), *command[1:], "--out", str(out), "--quiet"]
        shown = f"python {script} " + " ".join(command[1:])
    else:
        run = [sys.executable, "-m", "minibp", *command, "--out", str(out), "--quiet"]
        shown = "minibp " + " ".join(command)
    if any(out.rglob("checkpoint.npz")):
        run.append("--resume")
    printed = subprocess.run(run, capture_output=True, text=True, check=False)
    sys.stderr.write(printed.stderr)
    if printed.returncode != 0:
        return printed.returncode
    dest = ROOT / "benchmarks" / "results" / args.name
    commits = [head]
    if "--resume" in run and (dest / "provenance.json").is_file():  # the run was begun at an earlier commit
        earlier = json.loads((dest / "provenance.json").read_text()).get("commits", [])
        commits = [c for c in earlier if c != commits[0]] + commits
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    configs = sorted(out.rglob("config.json"))  # <rule>/config.json, or seed-<s>/<rule>/config.json
    for config in configs:
        (dest / config.parent.relative_to(out)).mkdir(parents=True)
        for name in KEPT:
            shutil.copy2(config.parent / name, dest / config.parent.relative_to(out) / name)
    for name in ("summary.json", "compare.json"):
        for path in out.rglob(name):
            (dest / path.parent.relative_to(out)).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / path.relative_to(out))
    settings = json.loads(configs[0].read_text())
    import sklearn  # noqa: PLC0415

    provenance = {
        "command": shown,
        "commits": commits,  # the minibp commit(s) that trained it, first to last (a resumed run may span two)
        "tree_had_changes": bool(git("status", "--porcelain", "--", "minibp")),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "data_files_sha256": data_files(settings["dataset"], settings.get("data_dir", "")),
    }
    (dest / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    (dest / "table.txt").write_text(printed.stdout)
    print(printed.stdout, end="")
    print(f"kept: {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
