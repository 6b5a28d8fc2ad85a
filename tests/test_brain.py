"""The brain-like substitutions of the paper's Section 6 as model settings: locally connected layers
(``conv``), synaptic scaling (``norm``) and a bounded unit (``activation``) compose with the LeNet and
the ResNets, from Python and the command line; the standard parts build the networks they always
built; every combination trains under every rule or is refused with a message that names the fix;
saved configs from before the settings still load."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from minibp import SGD, TrainConfig, get_rule, train, train_step
from minibp.cli import main
from minibp.layers import (
    BatchNorm,
    Conv2D,
    LocalConv2D,
    RectifiedTanh,
    ReLU,
    Residual,
    SynapticScaling,
)
from minibp.layers.pool import MaxPool2D
from minibp.losses import SoftmaxCrossEntropy
from minibp.models import CONV_MODELS, basic_block, bottleneck_block, lenet, resnet20, resnet50
from minibp.network import Network
from minibp.rules import RULES


def arrays(net):
    return [
        (type(layer).__name__, k, np.asarray(v))
        for layer in net.walk()
        for d in (layer.params, layer.buffers)
        for k, v in d.items()
    ]


def assert_same_network(a, b):
    assert repr(a) == repr(b)
    for (t1, k1, v1), (t2, k2, v2) in zip(arrays(a), arrays(b), strict=True):
        assert (t1, k1) == (t2, k2)
        np.testing.assert_array_equal(v1, v2)


@pytest.mark.parametrize("bn", ["after", "before"])
def test_the_standard_parts_build_the_resnet_of_the_block_functions(bn):
    """Shared convolutions, batch norm and ReLU: ResNet-20 and ResNet-50 are a stem, the public block
    functions' blocks and a head, weight for weight (the same draws in the same order)."""
    rng = np.random.default_rng([3, 0])
    stem_norm = [BatchNorm(4, dtype="float32"), ReLU()] if bn == "before" else [ReLU(), BatchNorm(4, dtype="float32")]
    layers = [Conv2D(1, 4, 3, padding=1, bias=False, gain=ReLU.gain, rng=rng), *stem_norm]
    c_in = 4
    for stage in range(3):
        for i in range(3):
            layers.append(basic_block(c_in, 4 * 2**stage, 2 if stage and not i else 1, bn=bn, rng=rng))
            c_in = 4 * 2**stage
    from minibp.models import _head

    assert_same_network(
        resnet20((1, 12, 12), 10, width=4, bn=bn, seed=3), Network(layers + _head(c_in, 10, rng, "float32"))
    )
    rng = np.random.default_rng([3, 0])
    layers = [Conv2D(3, 2, 7, stride=2, padding=3, bias=False, gain=ReLU.gain, rng=rng)]
    layers += [BatchNorm(2), ReLU()] if bn == "before" else [ReLU(), BatchNorm(2)]
    layers.append(MaxPool2D(3, stride=2, padding=1))
    c_in = 2
    for stage, n in enumerate((3, 4, 6, 3)):
        for i in range(n):
            layers.append(bottleneck_block(c_in, 2 * 2**stage, 2 if stage and not i else 1, bn=bn, rng=rng))
            c_in = 8 * 2**stage
    assert_same_network(
        resnet50((3, 16, 16), 10, width=2, bn=bn, seed=3), Network(layers + _head(c_in, 10, rng, "float32"))
    )


@pytest.mark.parametrize(
    ("bn", "main", "post"),
    [
        ("after", ["Conv2D", "ReLU", "BatchNorm", "Conv2D"], ["ReLU", "BatchNorm"]),  # the paper's Appendix D.3
        ("before", ["Conv2D", "BatchNorm", "ReLU", "Conv2D", "BatchNorm"], ["ReLU"]),  # He et al.'s block
    ],
)
def test_a_basic_block_with_the_standard_parts_has_the_published_layout(bn, main, post):
    block = basic_block(4, 8, 2, bn=bn, rng=np.random.default_rng(0))
    assert [type(layer).__name__ for layer in block.main.layers] == main
    assert [type(layer).__name__ for layer in block.post.layers] == post
    proj, norm = block.shortcut.layers
    assert isinstance(norm, BatchNorm) and (proj.k, proj.stride, proj.c_out) == (1, 2, 8)
    assert all(layer.b is None for layer in block.walk() if isinstance(layer, Conv2D))  # batch norm's β is the shift
    assert basic_block(8, 8, bn=bn, rng=np.random.default_rng(0)).shortcut is None  # same shape: the identity


def test_the_brain_like_lenet_is_local_scaled_and_bounded():
    net = lenet((1, 12, 12), 10, width=2, conv="local", norm="scaling", activation="rectified_tanh", bn="before")
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds[:8] == [
        "LocalConv2D", "SynapticScaling", "RectifiedTanh", "MaxPool2D",
        "LocalConv2D", "SynapticScaling", "RectifiedTanh", "MaxPool2D",
    ]  # fmt: skip
    first, scaling = net.layers[0], net.layers[1]
    assert first.W.shape == (12, 12, 2, 1, 5, 5) and first.b.shape == (2, 12, 12)
    assert scaling.units == (2, 12, 12) and isinstance(scaling.measure, RectifiedTanh)  # a gain per unit
    assert sum(isinstance(layer, RectifiedTanh) for layer in net.walk()) == 4  # dense hidden layers too
    shared = lenet((1, 12, 12), 10, width=2, norm="scaling")
    assert shared.layers[2].units == (2,) and isinstance(shared.layers[1], ReLU)  # after φ by default; per channel


def test_the_brain_like_resnet_has_no_batch_norm_and_a_bias_in_every_weight_layer():
    net = resnet20((1, 8, 8), 10, width=2, conv="local", norm="scaling", activation="rectified_tanh")
    layers = list(net.walk())
    assert not any(isinstance(layer, (BatchNorm, Conv2D, ReLU)) for layer in layers)
    locals_ = [layer for layer in layers if isinstance(layer, LocalConv2D)]
    assert len(locals_) == 21 and all(layer.b is not None for layer in locals_)  # 19 3×3, 2 projections
    assert [layer.in_size for layer in locals_[:2]] == [(8, 8), (8, 8)] and locals_[-1].out_size == (2, 2)
    scalings = [layer for layer in layers if isinstance(layer, SynapticScaling)]
    assert len(scalings) == 1 + 2 * 9 + 2 and all(len(s.units) == 3 for s in scalings)
    assert all(isinstance(block.post.layers[0], RectifiedTanh) for block in layers if isinstance(block, Residual))
    plain = resnet20((1, 8, 8), 10, width=2, norm="none")
    assert not any(isinstance(layer, (BatchNorm, SynapticScaling)) for layer in plain.walk())
    assert all(layer.b is not None for layer in plain.weight_layers)


# every part, both placements: cnn and resnet20 on 8×8 images
COMBOS = [
    (model, conv, norm, act, bn)
    for model, conv, norm, act, bn in itertools.product(
        ("cnn", "resnet20"),
        ("shared", "local"),
        ("batch", "scaling", "none"),
        ("relu", "rectified_tanh"),
        ("after", "before"),
    )
    if not (norm == "none" and bn == "before")
]


@pytest.mark.parametrize(("model", "conv", "norm", "act", "bn"), COMBOS)
def test_every_combination_takes_training_steps(model, conv, norm, act, bn):
    """Steps of BP, WM and KP (the rules with a B of each kind: Wᵀ, a mirror, W's gradient): finite,
    every layer's W and (WM, KP) B moves, and under backprop's gradient the batch's loss falls."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 8, 8))
    y = rng.integers(0, 4, 16)
    # batch norm after a bounded unit in a ResNet: the unit's small variance, divided out by every batch
    # norm, multiplies the error at each of them on its way down (test_batch_norm_after_a_bounded_unit_...)
    exploding = (model, norm, act, bn) == ("resnet20", "batch", "rectified_tanh", "after")
    for rule_name in ("bp", "wm", "kp"):
        parts = dict(conv=conv, norm=norm, activation=act, bn=bn)
        net = CONV_MODELS[model]((1, 8, 8), 4, width=2, seed=1, dtype="float64", **parts)
        rule = get_rule(rule_name, seed=1, **({"every": 1} if rule_name == "wm" else {}))
        net.init_feedback(rule, np.random.default_rng(2), example=x[:1])
        start = [{k: v.copy() for k, v in layer.params.items()} for layer in net.weight_layers]
        opt = SGD(0.002 if rule_name == "bp" else 0.02)  # bp: a small step, so that the batch's loss falls
        losses = [float(train_step(net, rule, SoftmaxCrossEntropy(), opt, x, y).loss) for _ in range(8)]
        assert np.isfinite(losses).all(), (rule_name, losses)
        for layer, before in zip(net.weight_layers, start, strict=True):
            assert all(not np.array_equal(layer.params[k], v) for k, v in before.items() if k != "b"), layer
        if rule_name == "bp" and not exploding:
            assert losses[-1] < losses[0], losses


def test_batch_norm_after_a_bounded_unit_multiplies_a_resnets_error_toward_the_input():
    """Rectified tanh's outputs lie in [0, 1) with a small variance, which each batch norm after it
    divides out, and its derivative multiplies the error by γ/σ again at every layer it passes:
    backprop's gradient at the stem is hundreds of times the last convolution's, an order of magnitude
    more than after a ReLU. Batch norm before the unit does it less; synaptic scaling, which divides
    nothing out, not at all."""

    def stem_over_head(**parts) -> float:
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((16, 1, 8, 8)), rng.integers(0, 4, 16)
        net = resnet20((1, 8, 8), 4, width=2, seed=1, dtype="float64", **parts)
        net.backward(SoftmaxCrossEntropy()(net.forward(x), y)[1], get_rule("bp"))
        norms = [np.linalg.norm(layer.grads["W"]) for layer in net.weight_layers]
        return norms[0] / norms[-2]  # the stem against the last convolution

    bounded = stem_over_head(activation="rectified_tanh")
    assert bounded > 100 and bounded > 10 * stem_over_head(activation="relu")
    assert bounded > 5 * stem_over_head(activation="rectified_tanh", bn="before")
    assert bounded > 50 * stem_over_head(activation="rectified_tanh", norm="scaling")


@pytest.mark.parametrize("rule_name", list(RULES))
@pytest.mark.parametrize("model", ["cnn", "resnet20"])
def test_every_rule_trains_the_brain_like_networks_from_the_command_line(rule_name, model, tmp_path, capsys):
    args = ["train", "--rule", rule_name, "--model", model, "--width", "2", "--epochs", "2", "--conv", "local"]
    args += ["--norm", "scaling", "--activation", "rectified_tanh", "--probe-size", "64", "--out", str(tmp_path)]
    assert main(args + (["--lr", "0.05"] if model == "cnn" else [])) == 0
    import json

    records = [json.loads(line) for line in (tmp_path / rule_name / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    saved = json.loads((tmp_path / rule_name / "config.json").read_text())
    assert (saved["conv"], saved["norm"], saved["activation"]) == ("local", "scaling", "rectified_tanh")


REFUSED = {
    "norm on the mlp": (
        dict(model="mlp", norm="batch"),
        r"--norm applies to --model cnn\|resnet20\|resnet18\|resnet50",
    ),
    "local ResNet-18": (dict(model="resnet18", conv="local"), r"--conv applies to --model cnn\|resnet20 only"),
    "placement without a norm": (
        dict(model="cnn", bn="before"),
        r"--bn before places the normalisation, and --norm is none",
    ),
    "scaling settings without scaling": (
        dict(model="resnet20", scaling_lr=0.1),
        r"--scaling-lr .* give --norm scaling",
    ),
    "sync-bn without batch norm": (
        dict(model="resnet20", norm="scaling", sync_bn=True),
        r"--sync-bn .* --norm is scaling",
    ),
}


@pytest.mark.parametrize(("settings", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_contradictions_are_refused_with_the_fix(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings).check_new_run()


def test_unknown_parts_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="conv must be one of shared, local"):
        lenet((1, 8, 8), conv="tied")
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        resnet20((1, 8, 8), activation="softplus")
    with pytest.raises(ValueError, match="billions of weights"):
        resnet50((3, 32, 32), conv="local")


def test_a_config_saved_before_the_settings_loads_as_the_model_it_was(digits_images):
    """Old runs' config.json have no conv, norm or scaling settings: they load with the defaults, which
    build the networks those runs trained (cnn without normalisation, ResNets with batch norm)."""
    old = TrainConfig(model="cnn", width=2, epochs=1).to_dict()
    for key in ("conv", "norm", "blocks", "scaling_target", "scaling_rate", "scaling_lr", "scaling_max_gain"):
        old.pop(key)
    cfg = TrainConfig(**old)
    assert (cfg.conv, cfg.norm) == ("shared", "none")
    net, _ = train(cfg, data=digits_images, progress=False)
    assert_same_network(net, train(TrainConfig(model="cnn", width=2, epochs=1), data=digits_images, progress=False)[0])
    assert TrainConfig(model="resnet20").norm == "batch"


@pytest.fixture(scope="module")
def digits_images():
    from minibp.data import load_digits

    return load_digits(flatten=False)
