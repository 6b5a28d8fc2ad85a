"""Run folders that lose nothing: atomic checkpoints, Ctrl-C, exact resume, divergence, plots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import matplotlib
import numpy as np
import pytest

from minibp import RULES, TrainConfig, compare, train
from minibp.checkpoint import read_meta, save_checkpoint
from minibp.cli import main
from minibp.data import load_digits
from minibp.train import TrainingDiverged, TrainingInterrupted

SMALL = dict(epochs=3, hidden=(16,), batch_size=64, probe_size=64, log_every=5)


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def _weights(net):
    return {f"{layer.name}.{k}": v.copy() for layer in net.walk() for k, v in {**layer.params, **layer.buffers}.items()}


class InterruptAt:
    """Digits, but Ctrl-C (a real SIGINT, or ``signum``) arrives while batch ``step`` of ``epoch`` is trained."""

    def __init__(self, data, epoch: int, step: int, signum: int = signal.SIGINT) -> None:
        self.data, self.epoch, self.step, self.signum = data, epoch, step, signum

    def __getattr__(self, name):
        return getattr(self.data, name)

    def train_batches(self, batch_size, *, epoch, seed, start=0):
        for i, batch in enumerate(self.data.train_batches(batch_size, epoch=epoch, seed=seed, start=start), start):
            if (epoch, i) == (self.epoch, self.step):
                signal.raise_signal(self.signum)
            yield batch


@pytest.fixture(scope="module")
def digits():
    """The digits as 1×8×8 images (this file's own: conftest's ``digits`` are flat)."""
    return load_digits(flatten=False)


@pytest.mark.parametrize("rule", list(RULES))
def test_ctrl_c_then_resume_equals_an_uninterrupted_run(rule, digits, tmp_path):
    cfg = TrainConfig(rule=rule, wm_every=3, **SMALL)
    net_ref, ref = train(cfg, data=digits, progress=False)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at epoch 2, step 8 of 23; checkpoint saved"):
        train(cfg, data=InterruptAt(digits, epoch=2, step=7), out=tmp_path, progress=False)
    meta = read_meta(tmp_path / rule / "checkpoint.npz")
    assert (meta["epoch"], meta["step"], meta["finished"]) == (2, 8, False)
    lines = (tmp_path / rule / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0, 1]
    net, resumed = train(cfg, data=digits, out=tmp_path, progress=False, resume=True)
    assert _strip(resumed) == _strip(ref)  # exact, not approximate
    for key, value in _weights(net_ref).items():
        np.testing.assert_array_equal(_weights(net)[key], value, err_msg=key)
    lines = (tmp_path / rule / "metrics.jsonl").read_text().splitlines()
    assert _strip([json.loads(x) for x in lines]) == _strip(ref)
    assert read_meta(tmp_path / rule / "checkpoint.npz")["finished"] is True


#: the brain-like LeNet (Section 6): locally connected layers, synaptic scaling, rectified tanh
BRAIN_LIKE = dict(model="cnn", width=2, conv="local", norm="scaling", activation="rectified_tanh", lr=0.05)


@pytest.mark.parametrize("rule", list(RULES))
def test_the_brain_like_lenet_resumes_exactly_with_its_scaling_state(rule, digits, tmp_path):
    """Mid-epoch Ctrl-C and resume under every rule: the same records and arrays, synaptic scaling's
    gains and activity traces included (they live in the layers' buffers, as batch norm's statistics)."""
    cfg = TrainConfig(rule=rule, epochs=2, batch_size=64, probe_size=32, checkpoint_every=5, wm_every=3, **BRAIN_LIKE)
    net_ref, ref = train(cfg, data=digits, progress=False)
    with pytest.raises(TrainingInterrupted):
        train(cfg, data=InterruptAt(digits, epoch=2, step=12), out=tmp_path, progress=False)
    net, resumed = train(cfg, data=digits, out=tmp_path, progress=False, resume=True)
    assert json.dumps(_strip(resumed)) == json.dumps(_strip(ref))  # as text: DFA's NaN angles compare equal
    mine, theirs = _weights(net), _weights(net_ref)
    assert any(key.endswith(".gain") for key in mine) and any(key.endswith(".activity") for key in mine)
    assert set(mine) == set(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(mine[key], value, err_msg=key)


def test_resume_is_exact_with_batch_norm_and_mid_epoch_checkpoints(digits, tmp_path):
    cfg = TrainConfig(
        rule="kp",
        model="resnet20",
        width=4,
        epochs=2,
        batch_size=128,
        probe_size=32,
        checkpoint_every=4,
        log_every=3,
        lr=0.02,
    )
    net_ref, ref = train(cfg, data=digits, progress=False)
    with pytest.raises(TrainingInterrupted):
        train(cfg, data=InterruptAt(digits, epoch=1, step=9), out=tmp_path, progress=False)
    assert read_meta(tmp_path / "kp" / "checkpoint.npz")["step"] == 10
    net, resumed = train(cfg, data=digits, out=tmp_path, progress=False, resume=True)
    assert _strip(resumed) == _strip(ref)
    mine, theirs = _weights(net), _weights(net_ref)
    assert any("running_mean" in k for k in mine)
    for key, value in theirs.items():
        np.testing.assert_array_equal(mine[key], value, err_msg=key)


def test_divergence_keeps_the_last_good_checkpoint(digits, tmp_path):
    cfg = TrainConfig(rule="bp", lr=50.0, **SMALL)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+ of 23 .*last checkpoint, from before this step"):
        train(cfg, data=digits, out=tmp_path, progress=False)
    meta = read_meta(tmp_path / "bp" / "checkpoint.npz")
    assert (meta["epoch"], meta["step"]) == (1, 0)  # the untrained network, saved before training began
    with np.load(tmp_path / "bp" / "checkpoint.npz") as saved:
        assert all(np.isfinite(saved[k]).all() for k in saved.files if k != "meta")


def test_resume_refuses_other_settings_and_missing_runs(digits, tmp_path):
    cfg = TrainConfig(rule="fa", **SMALL)
    train(cfg, data=digits, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume .*lr: saved 0.05, now 0.1"):
        train(TrainConfig(rule="fa", **{**SMALL, "lr": 0.1}), data=digits, out=tmp_path, progress=False, resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume .*start the run without --resume"):
        train(TrainConfig(rule="kp", **SMALL), data=digits, out=tmp_path, progress=False, resume=True)
    # runtime settings may change: the finished run resumes to the same records
    _, again = train(
        TrainConfig(rule="fa", **{**SMALL, "log_every": 1}), data=digits, out=tmp_path, progress=False, resume=True
    )
    assert len(again) == SMALL["epochs"] + 1


def test_a_run_saved_before_a_setting_existed_resumes_with_its_default(digits, tmp_path):
    """A config.json without a later-added key (here wm_normalize) reads as that key's default."""
    train(TrainConfig(rule="wm", **SMALL), data=digits, out=tmp_path, progress=False)
    path = tmp_path / "wm" / "config.json"
    saved = json.loads(path.read_text())
    del saved["wm_normalize"]
    path.write_text(json.dumps(saved))
    _, again = train(TrainConfig(rule="wm", **SMALL), data=digits, out=tmp_path, progress=False, resume=True)
    assert len(again) == SMALL["epochs"] + 1
    with pytest.raises(ValueError, match=r"cannot resume .*wm_normalize: saved False, now True"):
        cfg = TrainConfig(rule="wm", wm_normalize=True, **SMALL)
        train(cfg, data=digits, out=tmp_path, progress=False, resume=True)


def test_a_run_saved_before_a_model_dependent_setting_existed_resumes(digits, tmp_path):
    """``norm``'s default depends on the model ("none" for cnn): a config.json without it reads as the
    cnn it trained, not as the unresolved default, so the run resumes, and only a real change is refused."""
    cfg = TrainConfig(model="cnn", width=2, epochs=1, batch_size=64, probe_size=64)
    train(cfg, data=digits, out=tmp_path, progress=False)
    path = tmp_path / "bp" / "config.json"
    saved = json.loads(path.read_text())
    for key in ("conv", "norm", "blocks"):
        del saved[key]
    path.write_text(json.dumps(saved))
    _, again = train(cfg, data=digits, out=tmp_path, progress=False, resume=True)
    assert len(again) == 2
    with pytest.raises(ValueError, match=r"cannot resume .*norm: saved 'none', now 'scaling'"):
        train(TrainConfig(**{**cfg.to_dict(), "norm": "scaling"}), data=digits, out=tmp_path, resume=True)


def test_checkpoint_writes_are_atomic_and_damage_is_reported(digits, tmp_path, monkeypatch):
    cfg = TrainConfig(rule="kp", **{**SMALL, "epochs": 1})
    net, _ = train(cfg, data=digits, out=tmp_path, progress=False)
    path = tmp_path / "kp" / "checkpoint.npz"
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    from minibp.optim import SGD
    from minibp.rules import KolenPollack

    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, net, SGD(0.1), KolenPollack(), {"epoch": 9})
    assert path.read_bytes() == before  # the old checkpoint is untouched
    monkeypatch.undo()
    path.write_bytes(before[: len(before) // 2])  # truncated, as by a crash of another program
    with pytest.raises(ValueError, match=r"checkpoint .*checkpoint.npz is unreadable"):
        train(cfg, data=digits, out=tmp_path, progress=False, resume=True)


def test_compare_resumes_finished_and_unfinished_rules(digits, tmp_path):
    cfg = TrainConfig(**SMALL)
    ref = compare(cfg, ["bp", "wm"], data=digits, progress=False, plot=False)
    with pytest.raises(TrainingInterrupted):
        compare(cfg, ["bp", "wm"], data=InterruptAt(digits, epoch=3, step=2), out=tmp_path, progress=False)
    assert read_meta(tmp_path / "bp" / "checkpoint.npz")["finished"] is False  # bp was the one interrupted
    again = compare(cfg, ["bp", "wm"], data=digits, out=tmp_path, progress=False, plot=False, resume=True)
    assert {r: _strip(h) for r, h in again.histories.items()} == {r: _strip(h) for r, h in ref.histories.items()}


def test_cli_ctrl_c_saves_and_resume_continues(tmp_path):
    """The real thing: a `minibp train` process gets SIGINT, exits cleanly, and `--resume` finishes it."""
    out = tmp_path / "runs"
    args = ["--rule", "wm", "--epochs", "40", "--hidden", "32", "--probe-size", "32", "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "minibp", "train", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    metrics = out / "wm" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "--resume --rule wm" in err
    meta = read_meta(out / "wm" / "checkpoint.npz")
    assert not meta["finished"] and meta["epoch"] >= 2
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    resumed = [json.loads(x) for x in metrics.read_text().splitlines()]
    _, ref = train(TrainConfig(rule="wm", epochs=40, hidden=(32,), probe_size=32), progress=False)
    assert _strip(resumed) == _strip(ref)


def test_cli_resume_and_preset_errors(tmp_path, capsys):
    with pytest.raises(SystemExit, match="nothing to resume"):
        main(["train", "--out", str(tmp_path), "--resume"])
    args = ["--epochs", "1", "--hidden", "8", "--probe-size", "16", "--out", str(tmp_path), "--quiet"]
    assert main(["train", "--rule", "ss", *args]) == 0
    with pytest.raises(SystemExit, match=r"cannot change \['lr'\]"):
        main(["train", "--out", str(tmp_path), "--resume", "--lr", "0.3"])
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    assert "fashion-lenet" in listed and "milestones=[32]" in listed and "kp: lr=0.3" in listed


def test_plot_draws_fig3_and_fig4_from_run_folders(digits, tmp_path, capsys):
    compare(TrainConfig(**SMALL), ["bp", "fa", "kp"], data=digits, out=tmp_path / "a", progress=False, plot=False)
    assert main(["plot", str(tmp_path / "a"), "--out", str(tmp_path / "figs"), "--title", "digits"]) == 0
    for name in ("fig3_test_error", "fig4_angles"):
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 10_000
        assert (tmp_path / "figs" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    # single rule folders from two comparisons: labels say which is which
    from minibp.plots import load_runs

    compare(TrainConfig(**SMALL), ["kp"], data=digits, out=tmp_path / "b", progress=False, plot=False)
    runs = load_runs([tmp_path / "a" / "kp", tmp_path / "b" / "kp"])
    assert sorted(runs) == ["a/kp", "b/kp"] and len(runs["a/kp"]) == 4
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "holds no metrics.jsonl" in capsys.readouterr().err


def test_fig3_gives_every_rule_its_own_colour_and_never_repeats_one(tmp_path, monkeypatch):
    from minibp import plots

    drawn = []
    monkeypatch.setattr(plots, "_save_both", lambda fig, stem: drawn.append(fig) or [])
    history = [{"epoch": e, "test_accuracy": 0.5 + 0.1 * e} for e in range(3)]

    def colours(labels):
        plots.plot_test_error({label: history for label in labels}, tmp_path / "fig3")
        lines = drawn.pop().axes[0].get_lines()
        return [matplotlib.colors.to_hex(line.get_color()) for line in lines]

    every = list(RULES)
    assert len(every) == 11 and colours(every) == [plots.RULE_COLORS[r] for r in every]
    assert colours(["wm", "dfa", "kp"]) == [plots.RULE_COLORS[r] for r in ("wm", "dfa", "kp")]
    # the same rules from two folders: matplotlib's cycle, of 20 colours for 12 lines (10 would repeat)
    twice = [f"{d}/{r}" for d in ("a", "b") for r in every[:6]]
    assert len(set(colours(twice))) == len(twice) == 12


def test_a_fresh_start_never_overwrites_an_unfinished_run(digits, tmp_path):
    cfg = TrainConfig(rule="ss", **SMALL)
    with pytest.raises(TrainingInterrupted):
        train(cfg, data=InterruptAt(digits, epoch=2, step=3), out=tmp_path, progress=False)
    before = (tmp_path / "ss" / "checkpoint.npz").read_bytes()
    with pytest.raises(FileExistsError, match=r"unfinished run \(stopped at epoch 2, step 4\).*--resume"):
        train(cfg, data=digits, out=tmp_path, progress=False)
    assert (tmp_path / "ss" / "checkpoint.npz").read_bytes() == before
    train(cfg, data=digits, out=tmp_path, progress=False, resume=True)
    train(cfg, data=digits, out=tmp_path, progress=False)  # a finished run may be run again


def test_ctrl_c_in_the_last_step_of_an_epoch_keeps_that_epoch(digits, tmp_path):
    cfg = TrainConfig(rule="kp", **SMALL)
    with pytest.raises(TrainingInterrupted, match="interrupted after epoch 1"):
        train(cfg, data=InterruptAt(digits, epoch=1, step=22), out=tmp_path, progress=False)
    meta = read_meta(tmp_path / "kp" / "checkpoint.npz")
    assert (meta["epoch"], meta["step"], len(meta["history"])) == (2, 0, 2)


def test_sigterm_saves_a_checkpoint_like_ctrl_c(digits, tmp_path):
    """A cluster pre-empts a job with SIGTERM: the run stops after the step, with a checkpoint, and resumes."""
    cfg = TrainConfig(rule="kp", **SMALL)
    _, ref = train(cfg, data=digits, progress=False)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at epoch 2, step 5 of 23; checkpoint saved"):
        train(cfg, data=InterruptAt(digits, epoch=2, step=4, signum=signal.SIGTERM), out=tmp_path, progress=False)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the run
    _, resumed = train(cfg, data=digits, out=tmp_path, progress=False, resume=True)
    assert _strip(resumed) == _strip(ref)


def test_a_finished_run_with_other_settings_is_not_overwritten(digits, tmp_path):
    cfg = TrainConfig(rule="bp", **SMALL)
    train(cfg, data=digits, out=tmp_path, progress=False)
    saved = {name: (tmp_path / "bp" / name).read_bytes() for name in ("checkpoint.npz", "config.json")}
    with pytest.raises(FileExistsError, match=r"finished run with other settings \(hidden: saved \[16\], now \[32\]\)"):
        train(TrainConfig(rule="bp", **{**SMALL, "hidden": (32,)}), data=digits, out=tmp_path, progress=False)
    assert {name: (tmp_path / "bp" / name).read_bytes() for name in saved} == saved
    # the same settings again give the same numbers, so that may overwrite
    _, again = train(TrainConfig(rule="bp", **{**SMALL, "log_every": 2}), data=digits, out=tmp_path, progress=False)
    assert len(again) == SMALL["epochs"] + 1


def test_compare_looks_at_every_folder_before_any_rule_trains(digits, tmp_path):
    cfg = TrainConfig(**SMALL)
    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(rule="fa", **SMALL), data=InterruptAt(digits, epoch=1, step=3), out=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="fa holds an unfinished run"):
        compare(cfg, ["bp", "fa"], data=digits, out=tmp_path, progress=False, plot=False)
    assert not (tmp_path / "bp").exists()  # bp did not train first
    # nor do bad WM settings wait for wm
    with pytest.raises(ValueError, match=r"setting .wm_decay. must be in \[0, 1\)"):
        compare(TrainConfig(**{**SMALL, "wm_decay": 5.0}), ["bp", "wm"], data=digits, out=tmp_path, progress=False)
    assert not (tmp_path / "bp").exists()


def test_compare_resumes_its_own_rules_each_with_its_own_settings(digits, tmp_path):
    """compare.json keeps the rules and each rule's settings (here a per-rule learning rate), so
    `minibp compare --out X --resume`, the command an interrupted compare prints, continues exactly."""
    cfg, per_rule = TrainConfig(**SMALL), {"kp": {"lr": 0.1}}
    ref = compare(cfg, ["bp", "kp"], data=digits, progress=False, plot=False, per_rule=per_rule)
    with pytest.raises(TrainingInterrupted):
        compare(cfg, ["bp", "kp"], data=InterruptAt(digits, epoch=2, step=2), out=tmp_path, per_rule=per_rule)
    assert not (tmp_path / "kp").exists()  # kp had not started
    assert main(["compare", "--out", str(tmp_path), "--resume", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["bp", "kp"]  # not all five rules
    assert json.loads((tmp_path / "kp" / "config.json").read_text())["lr"] == 0.1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {r: _strip([rec])[0] for r, rec in summary.items()} == {r: _strip(h)[-1] for r, h in ref.histories.items()}


def test_resume_takes_flags_that_repeat_the_saved_settings(digits, tmp_path):
    args = ["--epochs", "2", "--hidden", "8", "--probe-size", "16", "--out", str(tmp_path), "--quiet"]
    assert main(["train", "--rule", "kp", *args]) == 0
    assert main(["train", "--rule", "kp", *args, "--resume"]) == 0  # the same command plus --resume
    with pytest.raises(SystemExit, match=r"cannot change \['hidden'\]"):
        main(["train", "--rule", "kp", *args, "--hidden", "9", "--resume"])
    with pytest.raises(SystemExit, match="nothing to resume for rule fa .*it holds runs of kp"):
        main(["train", "--rule", "fa", "--out", str(tmp_path), "--resume"])


def test_a_damaged_byte_in_a_checkpoint_is_reported_with_a_way_out(digits, tmp_path):
    train(TrainConfig(rule="kp", **SMALL), data=digits, out=tmp_path, progress=False)
    path = tmp_path / "kp" / "checkpoint.npz"
    import zipfile

    with zipfile.ZipFile(path) as z:
        start = z.getinfo("param/dense1/W.npy").header_offset
    raw = bytearray(path.read_bytes())
    # the member's data follows its 30-byte local header, its name and its extra field
    name_len, extra_len = (int.from_bytes(raw[start + at : start + at + 2], "little") for at in (26, 28))
    raw[start + 30 + name_len + extra_len + 200] ^= 0xFF  # one byte of W's values
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"is damaged: param/dense1/W cannot be read .*delete the run's folder"):
        train(TrainConfig(rule="kp", **SMALL), data=digits, out=tmp_path, progress=False, resume=True)


def test_ctrl_c_outside_the_training_loop_exits_cleanly(tmp_path, monkeypatch, capsys):
    import importlib

    train_module = importlib.import_module("minibp.train")  # the module: `minibp.train` is also the function

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "load_data", interrupted)
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == "minibp: interrupted"


def test_plot_of_a_compare_folder_shows_only_its_comparison(digits, tmp_path):
    from minibp.plots import load_runs

    compare(TrainConfig(**SMALL), ["bp", "fa"], data=digits, out=tmp_path, progress=False, plot=False)
    compare(TrainConfig(**SMALL), ["bp"], data=digits, out=tmp_path, progress=False, plot=False)
    assert (tmp_path / "fa").exists() and sorted(load_runs([tmp_path])) == ["bp"]
    assert sorted(load_runs([tmp_path / "bp", tmp_path / "fa"])) == ["bp", "fa"]  # named folders: as given
