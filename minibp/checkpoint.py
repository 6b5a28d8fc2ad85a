"""Checkpoints: everything a run needs to continue exactly where it stopped, in one ``.npz`` file.

A checkpoint holds

* every layer's params (``W``, ``b``, the rule's ``B``, batch norm's ``gamma``/``beta``),
* every layer's buffers (batch norm's running statistics),
* the optimizer's momentum buffers,
* and a JSON ``meta`` record: where in training the run is (epoch, step), the running sums of
  the epoch so far, the rule's own state (the weight mirror's pass counter), the history of
  finished epochs and the config.

Nothing else is random in a run: the initial weights and ``B`` are in the arrays, the order
of each epoch comes from ``(seed, epoch)`` (:func:`minibp.data.epoch_order`) and the mirror
noise from ``(seed, pass number)``. So on NumPy a resumed run reproduces an uninterrupted
one bit for bit.

Files are written atomically: to a temporary file in the same folder, flushed to disk, then
renamed over the old checkpoint, so a crash or a full disk never leaves a half-written one.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .backend import get_array_module, to_numpy
from .network import Network
from .optim import SGD
from .rules import Rule

FORMAT = 1


def _arrays(net: Network, opt: SGD) -> dict[str, Any]:
    """The run's arrays by a stable name: ``param/<layer>/<key>``, ``buffer/<layer>/<key>``,
    ``velocity/<layer>.<key>``."""
    arrays: dict[str, Any] = {}
    for layer in net.walk():
        for key, value in layer.params.items():
            arrays[f"param/{layer.name}/{key}"] = value
        for key, value in layer.buffers.items():
            arrays[f"buffer/{layer.name}/{key}"] = value
    for slot, value in opt.velocity.items():
        arrays[f"velocity/{slot}"] = value
    return arrays


def save_checkpoint(path: str | Path, net: Network, opt: SGD, rule: Rule, meta: dict[str, Any]) -> Path:
    """Write the run's state to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: to_numpy(value) for name, value in _arrays(net, opt).items()}  # explicit device→host
    record = {"format": FORMAT, "rule_state": rule.state(), **meta}
    payload["meta"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, **payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON record of a checkpoint, without loading its arrays."""
    with _open(path) as data:
        return _meta(data, path)


def load_checkpoint(path: str | Path, net: Network, opt: SGD, rule: Rule) -> dict[str, Any]:
    """Restore ``net``, ``opt`` and ``rule`` from ``path`` in place; returns the meta record.

    ``net`` must be the same architecture (built from the same config); every array is
    checked by name and shape, and a mismatch says which.
    """
    with _open(path) as data:
        meta = _meta(data, path)
        names = set(data.files) - {"meta"}
        expected = {n: a for n, a in _arrays(net, opt).items() if not n.startswith("velocity/")}
        saved_state = {n for n in names if not n.startswith("velocity/")}
        missing, extra = sorted(set(expected) - saved_state), sorted(saved_state - set(expected))
        if missing or extra:
            raise ValueError(
                f"checkpoint {path} does not fit this network (missing {missing[:5]}, unexpected {extra[:5]}): "
                "it was written by a different model, width or rule; resume with the run's own config.json"
            )
        for name in sorted(names):
            saved = _read_array(data, name, path)
            if name.startswith("velocity/"):
                slot = name.removeprefix("velocity/")
                like = _param_for_slot(net, slot)
                opt.velocity[slot] = get_array_module(like).asarray(saved, dtype=like.dtype)
                continue
            kind, layer_name, key = name.split("/", 2)
            target = expected[name]
            if saved.shape != target.shape:
                raise ValueError(f"checkpoint {path}: {name} has shape {saved.shape}, the network's is {target.shape}")
            target[...] = get_array_module(target).asarray(saved, dtype=target.dtype)  # host→device, in place
    rule.load_state(meta.get("rule_state", {}))
    return meta


def _param_for_slot(net: Network, slot: str) -> Any:
    layer_name, key = slot.rsplit(".", 1)
    for layer in net.walk():
        if layer.name == layer_name and key in layer.params:
            return layer.params[key]
    raise ValueError(f"checkpoint has momentum for {slot!r}, which this network does not have")


#: what a damaged ``.npz`` raises when one of its arrays is read: a bad CRC or zip record, a
#: broken deflate stream, a short or garbled ``.npy`` header
_DAMAGED = (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError)

_START_OVER = "restore a copy, or delete the run's folder and start it again"


def _read_array(data: Any, name: str, path: str | Path) -> np.ndarray:
    try:
        return data[name]
    except _DAMAGED as err:
        raise ValueError(f"checkpoint {path} is damaged: {name} cannot be read ({err}); {_START_OVER}") from err


def _open(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: the run was not started, or not with this --out")
    try:
        return np.load(path, allow_pickle=False)
    except _DAMAGED as err:
        raise ValueError(
            f"checkpoint {path} is unreadable ({err}); it may be from a full disk or another program: {_START_OVER}"
        ) from err


def _meta(data: Any, path: str | Path) -> dict[str, Any]:
    try:
        meta = json.loads(bytes(data["meta"]).decode())
    except (KeyError, *_DAMAGED) as err:
        raise ValueError(
            f"checkpoint {path} has no readable meta record ({err}): it is damaged or not minibp's; {_START_OVER}"
        ) from err
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} has format {meta.get('format')}, this minibp reads format {FORMAT}")
    return meta
