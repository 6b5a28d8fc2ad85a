"""The training loop: train_step, the training API and command line, determinism, compare, the
settings and their checks, and every rule training the MLP and the convolutional models."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from minibp import SGD, TrainConfig, TrainingDiverged, compare, train
from minibp.cli import main
from minibp.data import Dataset, load_digits
from minibp.metrics import angle, matrix_angles
from minibp.train import build_model, initial_network

SMALL = dict(epochs=2, hidden=(16,), batch_size=64, probe_size=64)


def test_same_seed_gives_identical_numbers(digits):
    cfg = TrainConfig(rule="wm", **SMALL)
    _, h1 = train(cfg, data=digits, progress=False)
    _, h2 = train(cfg, data=digits, progress=False)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in h1]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in h2]
    _, h3 = train(dataclasses.replace(cfg, seed=1), data=digits, progress=False)
    assert h3[-1]["train_loss"] != h1[-1]["train_loss"]


def test_compare_starts_every_rule_from_the_same_weights(digits, tmp_path):
    result = compare(TrainConfig(**SMALL), data=digits, out=tmp_path, progress=False, plot=True)
    first = {rule: hist[0] for rule, hist in result.histories.items()}
    # epoch 0 is the untrained network: identical W (so identical loss) for every rule,
    # identical random B for FA, WM and KP (so identical matrix angles)
    assert len({r["train_loss"] for r in first.values()}) == 1
    assert first["fa"]["matrix_angle"] == first["wm"]["matrix_angle"] == first["kp"]["matrix_angle"]
    assert first["bp"]["matrix_angle"] == [0.0, 0.0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary) == ["bp", "fa", "kp", "ss", "wm"]
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    for rule in summary:
        lines = (tmp_path / rule / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["epoch"] for r in records] == [0, 1, 2]
        for r in records:
            assert {
                "epoch",
                "train_loss",
                "train_accuracy",
                "test_accuracy",
                "matrix_angle",
                "delta_angle",
                "seconds",
            } <= set(r)
            assert len(r["matrix_angle"]) == 2 and len(r["delta_angle"]) == 1
        assert records[-1] == summary[rule]
    assert "rule" in result.table() and "kp" in result.table()


@pytest.mark.parametrize("rule", ["fa", "dfa", "kp"])
def test_initial_network_is_the_start_a_run_records_at_epoch_0(rule, digits):
    # epoch 0's angles are measured before the first step, so initial_network must rebuild
    # the same W and the same B (DFA's shaped by the example's forward pass) from the seed
    cfg = TrainConfig(rule=rule, model="cnn", epochs=1, batch_size=256, probe_size=64, seed=3)
    _, history = train(cfg, data=digits, progress=False)
    example = digits.x_train[:1].reshape(1, *digits.image_shape)
    start = initial_network(cfg, digits, cfg.make_rule(), example)
    np.testing.assert_array_equal(matrix_angles(start, cfg.make_rule()), history[0]["matrix_angle"])
    other = initial_network(dataclasses.replace(cfg, seed=4), digits, cfg.make_rule(), example)
    assert not np.allclose(matrix_angles(other, cfg.make_rule())[-1], history[0]["matrix_angle"][-1])


def test_training_learns_and_kp_aligns(digits):
    _, hist = train(TrainConfig(rule="kp", epochs=8, weight_decay=0.02), data=digits, progress=False)
    assert hist[-1]["test_accuracy"] > 0.9
    assert hist[-1]["matrix_angle"][-1] < hist[0]["matrix_angle"][-1] - 30
    assert all(d < 45 for d in hist[-1]["delta_angle"])


def test_diverging_loss_stops_with_a_clear_message(digits):
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+ of 23 .*lower the learning rate"):
        train(TrainConfig(rule="bp", lr=50.0, momentum=0.9, **SMALL), data=digits, progress=False)


def test_bad_input_is_reported_clearly():
    x = np.zeros((10, 4), dtype=np.float32)
    y = np.zeros(10, dtype=np.int64)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf value\(s\), the first at index \(3, 2\)"):
        Dataset("toy", bad, y, x, y, n_classes=2)
    with pytest.raises(ValueError, match="10 inputs but 9 labels"):
        Dataset("toy", x, y[:9], x, y, n_classes=2)
    with pytest.raises(ValueError, match="label 5 found but n_classes is 2"):
        Dataset("toy", x, y + 5, x, y, n_classes=2)
    with pytest.raises(ValueError, match="labels must be integers"):
        Dataset("toy", x, y.astype(float), x, y, n_classes=2)
    with pytest.raises(ValueError, match="setting 'rule' must be one of bp, fa, ss, wm, kp, .*; got 'sgd'"):
        TrainConfig(rule="sgd")
    with pytest.raises(ValueError, match="setting 'epochs' must be >= 1, got 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="setting 'lr' must be > 0, got -1"):
        train(TrainConfig(lr=-1, **SMALL), data=Dataset("toy", x, y, x, y, n_classes=2), progress=False)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epochs": "1"}, r"'epochs' must be an integer, got '1' \(str\)"),
        ({"epochs": 1.7}, r"'epochs' must be an integer, got 1.7"),
        ({"lr": float("inf")}, r"'lr' must be > 0, got inf"),
        ({"lr": "0.1"}, r"'lr' must be a number"),
        ({"seed": 1.5}, r"'seed' must be an integer"),
        ({"hidden": 8}, r"'hidden' must be a list of integers, got 8"),
        ({"hidden": "88"}, r"'hidden' must be a list of integers, got '88'"),
        ({"milestones": 3}, r"'milestones' must be a list of numbers"),
        ({"wm_normalize": "false"}, r"'wm_normalize' must be true or false, got 'false'"),
        ({"rule": 3}, r"'rule' must be text"),
        ({"dtype": "int32"}, "'dtype' must be one of float32, float64; got 'int32'"),
        ({"gamma": -1.0}, "'gamma' must be > 0, got -1.0"),
        ({"gamma": float("inf")}, "'gamma' must be > 0, got inf"),
        ({"milestones": [-5]}, r"'milestones' must have every item >= 0, got \[-5\]"),
        ({"milestones": [float("nan")]}, "'milestones' must have every item >= 0"),
        ({"diverge_factor": 0.0}, "'diverge_factor' must be > 1"),
        ({"seed": -1}, "'seed' must be >= 0, got -1"),
        ({"rule": "bp", "wm_decay": 5.0}, r"'wm_decay' must be in \[0, 1\), got 5.0"),
        ({"rule": [0.5]}, r"'rule' must be text, got \[0.5\]"),
        ({"momentum": 1.0}, r"'momentum' must be in \[0, 1\), got 1.0"),
        ({"model": "vgg"}, "'model' must be one of mlp, cnn, resnet20, resnet18, resnet50; got 'vgg'"),
    ],
)
def test_settings_of_the_wrong_type_or_range_are_refused(settings, message):
    """A config file can hold anything: each setting is checked against its default's type and its range,
    with a message that names it, never a traceback from deep inside a run or a silent misreading."""
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_a_new_run_refuses_milestones_after_its_last_epoch(tmp_path):
    """A preset's milestones with a shorter --epochs would never drop the rate. A run saved before this
    check existed still resumes (its config is valid), so it is made when a run starts."""
    cfg = TrainConfig(schedule="step", milestones=[50, 75], epochs=10)
    for start in (lambda: train(cfg, progress=False), lambda: compare(cfg, ["bp"], out=tmp_path, progress=False)):
        with pytest.raises(ValueError, match=r"\[50.0, 75.0\] fall at or after the last epoch \(10\)"):
            start()
    assert not tmp_path.joinpath("bp").exists()


def test_each_model_takes_its_own_defaults_and_given_values_win():
    from minibp.config import MODEL_DEFAULTS

    for model, defaults in MODEL_DEFAULTS.items():
        cfg = TrainConfig(model=model)
        assert {k: getattr(cfg, k) for k in defaults} == defaults
    assert TrainConfig(model="cnn").lr != TrainConfig().lr  # the MLP's 0.05 made FA and WM diverge on the CNN
    assert TrainConfig(model="cnn", lr=0.05, epochs=3).lr == 0.05
    assert TrainConfig(model="cnn", lr=0.05, epochs=3).epochs == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": "cnn", "hidden": [8]}, r"--hidden applies to --model mlp only, and the model is 'cnn'"),
        ({"model": "mlp", "conv": "local"}, r"--conv applies to --model cnn\|resnet20 only"),
        ({"model": "mlp", "width": 8}, r"--width applies to --model cnn\|resnet20\|resnet18\|resnet50 only"),
        ({"model": "cnn", "bn": "before"}, r"--bn before places the normalisation, and --norm is none"),
        ({"schedule": "cosine", "milestones": [1]}, r"milestones \[1.0\] apply to the step schedule only"),
        ({"model": "cnn", "shortcut": "zeropad"}, r"--shortcut applies to --model resnet20 only"),
    ],
)
def test_settings_a_run_would_ignore_are_refused(settings, message, tmp_path):
    """Contradictory flags stop a new run with a message instead of being ignored; a config that only
    repeats the defaults (as every saved config.json does) is fine."""
    cfg = TrainConfig(**{**SMALL, "hidden": (256, 256), **settings})
    with pytest.raises(ValueError, match=message):
        cfg.check_new_run()
    flags = [x for k, v in settings.items() for x in (f"--{k}", *map(str, v if isinstance(v, list) else [v]))]
    assert main(["train", *flags, "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 2
    assert not any(tmp_path.iterdir())
    TrainConfig(model="cnn", hidden=(256, 256), activation="relu", width=0, bn="after").check_new_run()


def test_settings_are_read_as_their_types():
    cfg = TrainConfig(epochs=2.0, lr=1, hidden=[8, 4.0], milestones=[1], schedule="step", wm_normalize=np.bool_(True))
    assert (cfg.epochs, cfg.lr, cfg.hidden, cfg.milestones, cfg.wm_normalize) == (2, 1.0, (8, 4), (1.0,), True)
    assert type(cfg.epochs) is int and type(cfg.lr) is float and type(cfg.wm_normalize) is bool
    with pytest.raises(ValueError, match="learning rate must be a finite number > 0, got inf"):
        SGD(float("inf"))


def test_cli_config_file_that_is_not_text(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_bytes(b"\xff\xfe{")
    with pytest.raises(SystemExit, match=r"config file .*cfg.json is not a UTF-8 text file"):
        main(["train", "--config", str(cfg), "--out", str(tmp_path)])


def test_cli_train_and_compare(tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["--epochs", "1", "--hidden", "8", "--probe-size", "32", "--out", str(out), "--quiet"]
    assert main(["train", "--rule", "kp", *args]) == 0
    assert "kp: test accuracy" in capsys.readouterr().out
    assert json.loads((out / "kp" / "config.json").read_text())["rule"] == "kp"
    assert main(["compare", "--rules", "bp", "fa", *args]) == 0
    printed = capsys.readouterr().out
    assert "bp" in printed and "fa" in printed and (out / "compare.png").exists()


def test_cli_config_file_and_errors(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"rule": "fa", "epochs": 1, "hidden": [8], "probe_size": 16}))
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path), "--quiet", "--rule", "ss"]) == 0
    assert (tmp_path / "ss" / "metrics.jsonl").exists()  # the flag overrides the file
    cfg.write_text(json.dumps({"epoch": 1}))
    with pytest.raises(SystemExit, match=r"unknown setting\(s\) \['epoch'\]"):
        main(["train", "--config", str(cfg), "--out", str(tmp_path)])
    assert main(["train", "--lr", "-1", "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 2
    assert "setting 'lr' must be > 0, got -1" in capsys.readouterr().err


def test_compare_records_a_diverging_rule_and_goes_on(digits, tmp_path):
    result = compare(
        TrainConfig(lr=50.0, epochs=2, hidden=(16,), probe_size=16),
        ["bp", "kp"],
        data=digits,
        progress=False,
        out=tmp_path,
    )
    for rule in ("bp", "kp"):
        last = result.histories[rule][-1]
        assert last["epoch"] == 0 and "lower the learning rate" in last["diverged"]
    assert "diverged after epoch 0" in result.table()
    assert json.loads((tmp_path / "summary.json").read_text())["kp"]["diverged"]


def test_presets_layer_under_config_and_flags(tmp_path):
    """A preset's settings, then its per-rule settings, then --config, then flags."""
    out = tmp_path / "runs"
    small = ["--dataset", "digits", "--epochs", "1", "--hidden", "8", "--probe-size", "16", "--quiet"]
    assert main(["compare", "--preset", "mnist-sigmoid", "--rules", "bp", "wm", "kp", "--out", str(out), *small]) == 0
    saved = {r: json.loads((out / r / "config.json").read_text()) for r in ("bp", "wm", "kp")}
    assert {r: c["lr"] for r, c in saved.items()} == {"bp": 0.2, "wm": 0.2, "kp": 0.3}
    assert saved["kp"]["weight_decay"] == 1e-4 and saved["bp"]["weight_decay"] == 0.0
    assert all(c["activation"] == "sigmoid" and c["batch_size"] == 128 and c["hidden"] == [8] for c in saved.values())
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"weight_decay": 0.002}))
    one = tmp_path / "one"
    args = ["train", "--preset", "mnist-sigmoid", "--config", str(cfg), "--rule", "kp", "--lr", "0.1"]
    assert main([*args, "--out", str(one), *small]) == 0
    kp = json.loads((one / "kp" / "config.json").read_text())
    assert (kp["lr"], kp["weight_decay"], kp["momentum"]) == (0.1, 0.002, 0.0)


@pytest.mark.parametrize("rule", ["bp", "wm", "kp"])
def test_train_step_is_forward_loss_feedback_update_and_after_step(rule):
    """minibp.train_step, against its five parts called by hand on a twin network: the same loss,
    output, weights, feedback weights and momentum (KP's B moves with W; WM mirrors every step)."""
    from minibp import SoftmaxCrossEntropy, get_rule, mlp, train_step

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 6)), rng.integers(0, 4, 16)
    nets, rules, opts = [], [], []
    for _ in range(2):
        nets.append(mlp([6, 8, 4], "relu", seed=3, dtype="float64"))
        rules.append(get_rule(rule, every=1, batch_size=8) if rule == "wm" else get_rule(rule))
        nets[-1].init_feedback(rules[-1], np.random.default_rng(1))
        opts.append(SGD(0.1, momentum=0.9, weight_decay=1e-2))
    loss_fn = SoftmaxCrossEntropy()
    for _ in range(3):
        step = train_step(nets[0], rules[0], loss_fn, opts[0], x, y)
        out = nets[1].forward(x)
        loss, dout = loss_fn(out, y)
        nets[1].backward(dout, rules[1])
        opts[1].step(nets[1].param_layers)
        rules[1].after_step(nets[1])
        assert float(step.loss) == float(loss)
        np.testing.assert_array_equal(step.output, out)
    for a, b in zip(nets[0].weight_layers, nets[1].weight_layers):
        assert a.params.keys() == b.params.keys()
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
    assert opts[0].velocity.keys() == opts[1].velocity.keys() and opts[0].velocity
    assert rules[0].state() == rules[1].state()


@pytest.mark.parametrize("model", ["cnn", "resnet20"])
def test_conv_models_train_on_digits_under_every_rule(model):
    data = load_digits()
    for rule in ("bp", "fa", "ss", "wm", "kp"):
        cfg = TrainConfig(rule=rule, model=model, epochs=1, width=4, lr=0.02, probe_size=64)
        start = build_model(cfg, data).weight_layers[0].W.copy()  # the same seed: train's initial weights
        net, hist = train(cfg, data=data, progress=False)
        n = len(net.weight_layers)
        assert len(hist[-1]["matrix_angle"]) == n and len(hist[-1]["delta_angle"]) == n - 1
        assert np.all(np.isfinite(hist[-1]["delta_angle"])), (rule, hist[-1]["delta_angle"])  # δ reached every layer
        if rule == "bp":
            assert max(hist[-1]["delta_angle"]) < 1e-3 and max(hist[-1]["matrix_angle"]) == 0
        assert hist[-1]["train_loss"] < hist[0]["train_loss"], (rule, hist[0]["train_loss"], hist[-1]["train_loss"])
        # the first convolution learned from the δ that reached it: decay alone would only scale its kernel
        assert angle(net.weight_layers[0].W, start) > 0.5, (rule, angle(net.weight_layers[0].W, start))


@pytest.mark.parametrize("rule", ["wm", "kp", "dfa"])
def test_resnet20_with_parameter_free_shortcuts_trains(rule, tmp_path):
    """--shortcut zeropad: no weight layer on the shortcuts, so the mirror, KP's B and DFA's B live on
    the branches alone; the setting is saved with the run."""
    cfg = TrainConfig(
        rule=rule, model="resnet20", width=4, shortcut="zeropad", epochs=1, probe_size=16, wm_every=1, wm_batch_size=8
    )
    net, hist = train(cfg, data=load_digits(flatten=False), out=tmp_path, progress=False)
    assert len(net.weight_layers) == 20  # 19 convolutions and the classifier: no projections
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert json.loads((tmp_path / rule / "config.json").read_text())["shortcut"] == "zeropad"


def test_augment_crops_and_flips_the_training_batches_of_a_run():
    """--augment reaches the training batches of a run (the same numbers twice, others than without)."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 3, 8, 8)).astype(np.float32)
    y = np.arange(64) % 4
    images = Dataset("cifar-like", x, y, x[:16], y[:16], n_classes=4)
    cfg = TrainConfig(dataset="cifar10", model="cnn", width=2, epochs=2, batch_size=16, probe_size=16, augment=True)
    _, h1 = train(cfg, data=images, progress=False)
    _, h2 = train(cfg, data=images, progress=False)
    _, plain = train(dataclasses.replace(cfg, augment=False), data=images, progress=False)
    assert [r["train_loss"] for r in h1] == [r["train_loss"] for r in h2]
    assert h1[1]["train_loss"] != plain[1]["train_loss"]
    assert h1[0] == {**plain[0], "seconds": h1[0]["seconds"]}  # epoch 0 (the probe) is never augmented
