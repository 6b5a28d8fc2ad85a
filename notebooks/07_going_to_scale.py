# %% [markdown]
# # 07 — Going to scale
#
# **Paper:** Section 6 (Experiments) and Fig 3 of Akrout et al., *Deep Learning without Weight
# Transport*: ResNet-18 and ResNet-50 trained on ImageNet (1.28 million images, 1000 classes)
# under backprop (eq 2), feedback alignment (eq 3), sign-symmetry, the weight mirror (eqs 6–7)
# and Kolen–Pollack (eq 17), with batch norm after the ReLU (the paper's Appendix D.3), ReLUs
# without bias-blocking, and a learning rate that drops by 90 % at epoch 32.
#
# minibp is a NumPy engine for learning the equations, but the same code runs on a GPU through
# CuPy. In this notebook you will compute:
#
# 1. how minibp switches between NumPy and CuPy, and what happens without a GPU;
# 2. the size of the paper's networks: ResNet-18 has 11.7 M parameters and does 1.8 G
#    multiply-accumulates (MACs) per 224×224 image, ResNet-50 25.6 M and 4.1 G;
# 3. what a training step, an ImageNet epoch and the stored activations cost;
# 4. the paper's ImageNet settings written as a minibp `TrainConfig`;
# 5. a ResNet-18, four channels wide, trained for a few steps under each of the five rules on
#    this CPU: time per step and per-layer matrix angles.

# %%
# On Colab or Binder: install minibp first when it cannot be imported (docs/course.md, "Running the notebooks")
try:
    import minibp  # noqa: F401
except ModuleNotFoundError:
    import os
    import subprocess
    import sys

    MINIBP_SOURCE = os.environ.get("MINIBP_PIP_SOURCE", "")  # your course's pip source, e.g. git+https://…/minibp
    if not MINIBP_SOURCE:
        raise ModuleNotFoundError("minibp is not installed: set MINIBP_SOURCE in this cell to a pip source") from None
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", MINIBP_SOURCE])

# %%
import math
import os
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import minibp
from minibp import exercises
from minibp.layers import Conv2D
from minibp.models import resnet18, resnet50
from minibp.optim import get_schedule
from minibp.plots import RULE_COLORS, rule_label, save_figure

# One BLAS thread: the timings below are then those of one core, steady on a busy machine.
threadpool_limits(1)
RULES = ["bp", "fa", "ss", "wm", "kp"]

# %% [markdown]
# ## 1. The array-module switch
#
# Every array operation in minibp goes through an *array module* `xp`: NumPy by default, CuPy
# (NumPy's API on an NVIDIA GPU) when you ask for it with `minibp.set_backend("cupy")` or by
# setting `MINIBP_BACKEND=cupy` before `import minibp`. Layers find the module of the arrays
# they are handed with `minibp.get_array_module(x)`, and `minibp.to_numpy(x)` is the one explicit
# way back to the host (for plots and logs).

# %%
x = np.ones((2, 3), dtype=np.float32)
print("backend:", minibp.get_backend().__name__, "| module of x:", minibp.get_array_module(x).__name__)
assert minibp.get_backend() is np and minibp.get_array_module(x) is np
assert minibp.to_numpy(x) is x  # a NumPy array is already on the host: no copy

# %% [markdown]
# Asking for CuPy on a machine without it (or without a GPU) is an error that says how to fix it,
# not a silent fall-back to the CPU:

# %%
try:
    minibp.set_backend("cupy")
    gpu = True
    print("CuPy and a GPU are available")
    minibp.set_backend("numpy")  # back to the CPU for the rest of the notebook
except RuntimeError as err:
    gpu = False
    print("RuntimeError:", err)
    assert "pip install" in str(err)
    assert minibp.get_backend() is np  # the failed request left NumPy in place

# %% [markdown]
# The environment variable does the same at import time. We start a fresh Python with
# `MINIBP_BACKEND=cupy` and see what it reports:

# %%
env = {**os.environ, "MINIBP_BACKEND": "cupy"}
probe = subprocess.run(
    [sys.executable, "-c", "import minibp; print(minibp.get_backend().__name__)"],
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
)
print(probe.stdout.strip() or probe.stderr.strip().splitlines()[-1])
if gpu:
    assert probe.returncode == 0 and probe.stdout.strip() == "cupy"
else:
    assert probe.returncode != 0 and "pip install" in probe.stderr

# %% [markdown]
# With a GPU, the same training step runs there. Every builder draws its weights on the host
# from the seed, so a CuPy network starts from exactly the NumPy network's numbers, and one KP
# step must give the same weights up to float32 rounding. (On a machine without a GPU this cell
# says so and skips.)


# %%
def one_kp_step(backend):
    minibp.set_backend(backend)
    try:
        xp = minibp.get_backend()
        digits = minibp.data.load_digits()
        net = minibp.mlp([64, 32, 10], seed=0)
        rule = minibp.get_rule("kp")
        net.init_feedback(rule, np.random.default_rng(1))
        opt = minibp.SGD(0.05, momentum=0.9, weight_decay=1e-3)
        x, y = xp.asarray(digits.x_train[:64]), xp.asarray(digits.y_train[:64])
        minibp.train_step(net, rule, minibp.SoftmaxCrossEntropy(), opt, x, y)
        return [minibp.to_numpy(layer.W) for layer in net.weight_layers]
    finally:
        minibp.set_backend("numpy")


if gpu:
    on_cpu, on_gpu = one_kp_step("numpy"), one_kp_step("cupy")
    assert all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(on_cpu, on_gpu))
    print("one KP step on the GPU matches the CPU")
else:
    print("no GPU here: skipped the GPU step")

# %% [markdown]
# ## 2. The paper's networks, full size
#
# `minibp.models.resnet18` and `resnet50` build He et al.'s ImageNet ResNets: a 7×7 stride-2
# convolution and a 3×3 stride-2 max pool (the *stem*), four stages that halve the image and
# double the channels, global average pooling and a 1000-way dense layer. ResNet-18's stages
# have two *basic* blocks (two 3×3 convolutions) each; ResNet-50's have 3, 4, 6 and 3
# *bottleneck* blocks (1×1 down, 3×3, 1×1 up to four times the width). `bn="after"` (the
# default) puts batch norm after each ReLU, as in the paper.
#
# Building them only draws the weights, so it is quick even on a laptop.

# %%
nets = {"ResNet-18": resnet18(), "ResNet-50": resnet50()}
for name, net in nets.items():
    weights = sum(layer.W.size for layer in net.weight_layers)
    print(
        f"{name}: {len(net.weight_layers)} weight layers, {net.n_params():,} parameters "
        f"({weights:,} in convolution kernels and dense weights, the rest biases and batch norm)"
    )

assert abs(nets["ResNet-18"].n_params() / 11.7e6 - 1) < 0.01
assert abs(nets["ResNet-50"].n_params() / 25.6e6 - 1) < 0.01
assert len(nets["ResNet-18"].weight_layers) == 21 and len(nets["ResNet-50"].weight_layers) == 54

# %% [markdown]
# (The counts are exactly those of the reference implementations, 11,689,512 and 25,557,032.
# The "18" counts 17 convolutions on the main path plus the dense layer; the three 1×1
# projection shortcuts make 21 weight layers.)
#
# ## 3. Multiply-accumulates per image
#
# A convolution with `C_in` input and `C_out` output channels and a `k×k` kernel does
# `C_out · C_in · k²` MACs at each of its `H_out × W_out` output positions (eq 1 on every patch),
# with `H_out = ⌊(H + 2·padding − k) / stride⌋ + 1`. A dense layer does `n_out · n_in`. The
# spatial sizes come from a forward pass of one 224×224 image: each `Conv2D` keeps its input
# `y_l` (for eq 4).
#
# ### Exercise 1 · A convolution's cost (implement it)
#
# Write `conv_macs(c_in, c_out, k, h, w, stride, padding)`: the multiply-accumulates of one
# `k×k` convolution with zero padding on one `c_in × h × w` image. Count one MAC per
# multiply-and-add (not two FLOPs). `macs_per_layer` below uses it for every convolution of
# ResNet-18 and ResNet-50, and the asserts compare the totals with the published 1.8 and 4.1 GMACs.


# %%
def conv_macs(c_in, c_out, k, h, w, stride, padding):
    """MACs of a k×k convolution on one c_in × h × w image."""
    ### BEGIN SOLUTION
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (w + 2 * padding - k) // stride + 1
    return c_out * c_in * k * k * h_out * w_out  # eq (1) on every patch: C_out · C_in · k² per position
    ### END SOLUTION


conv_macs = exercises.check_conv_macs(conv_macs)


# %%
def macs_per_layer(net):
    """MACs of every weight layer for the image of the last forward pass (batch 1)."""
    macs = []
    for layer in net.weight_layers:
        if isinstance(layer, Conv2D):
            h, w = layer.x.shape[2:]
            macs.append(conv_macs(layer.c_in, layer.c_out, layer.k, h, w, layer.stride, layer.padding))
        else:
            macs.append(layer.W.size)
    return np.array(macs)


image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
macs, seconds = {}, {}
for name, net in nets.items():
    t0 = time.perf_counter()
    out = net.forward(image)
    seconds[name] = time.perf_counter() - t0
    macs[name] = macs_per_layer(net)
    print(
        f"{name}: {macs[name].sum() / 1e9:.3f} GMACs per image; forward pass on this CPU core "
        f"{seconds[name]:.2f} s ({2 * macs[name].sum() / seconds[name] / 1e9:.0f} GFLOP/s)"
    )

assert out.shape == (1, 1000)
stem = nets["ResNet-18"].weight_layers[0]
assert (stem.c_in, stem.c_out, stem.k, stem.stride, stem.padding) == (3, 64, 7, 2, 3)
assert macs["ResNet-18"][0] == 64 * 3 * 7 * 7 * 112 * 112  # the stem by hand: (224 + 6 − 7) // 2 + 1 = 112
assert abs(macs["ResNet-18"].sum() / 1.8e9 - 1) < 0.05
assert abs(macs["ResNet-50"].sum() / 4.1e9 - 1) < 0.05

# %% [markdown]
# The engine agrees with our spatial sizes: the `δ` that `Network.backward` returns at the output
# of every weight layer has exactly the shape `(1, C_out, H_out, W_out)` we used. We run the
# backward pass of ResNet-18 under backprop to check (and time it).

# %%
net = nets["ResNet-18"]
out = net.forward(image)
_, dout = minibp.SoftmaxCrossEntropy()(out, np.array([7]))
t0 = time.perf_counter()
deltas = net.backward(dout, minibp.get_rule("bp"))
seconds_backward = time.perf_counter() - t0
for layer, delta, m in zip(net.weight_layers, deltas, macs["ResNet-18"]):
    if isinstance(layer, Conv2D):
        assert delta.shape[:2] == (1, layer.c_out)
        assert layer.c_out * layer.c_in * layer.k**2 * delta.shape[2] * delta.shape[3] == m
print(f"backward pass {seconds_backward:.2f} s = {seconds_backward / seconds['ResNet-18']:.1f} × the forward pass")

# %% [markdown]
# The work and the parameters sit in different places. Each stage halves the image and doubles
# the channels, so `C_in · C_out · H · W` — the MACs — stays about the same from stage to stage,
# while the parameters, `C_in · C_out · k²`, pile up in the last, widest stage.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for ax, (name, net) in zip(axes, nets.items()):
    n = len(net.weight_layers)
    params = np.array([layer.W.size for layer in net.weight_layers])
    ax.bar(np.arange(1, n + 1) - 0.2, macs[name] / macs[name].sum(), 0.4, label="share of MACs")
    ax.bar(np.arange(1, n + 1) + 0.2, params / params.sum(), 0.4, label="share of weights")
    ax.set(title=name, xlabel="weight layer (input → output)", ylabel="fraction")
    ax.legend(frameon=False, fontsize=8)
fig.tight_layout()
save_figure(fig, "07_macs_and_weights")
plt.show()
plt.close(fig)

# %% [markdown]
# ## 4. What training costs
#
# A training step does the forward pass and, at every weight layer, two products of the same size
# (eqs 2–4): the weight gradient `δ_{l+1} y_lᵀ` and the feedback `F δ_{l+1}` — except at the first
# layer, whose input needs no `δ`. So a step costs `3F − F₁` MACs per image, about 3 forward
# passes, and the backward pass alone `2F − F₁`, about 2. The backward pass timed above took
# about 3 forward passes: on a CPU, NumPy's backward pass also spends time outside the products
# (building columns, adding them back, moving memory), which a count of MACs does not see.
# One MAC is two floating-point operations (FLOPs). The ImageNet training set has 1,281,167 images.

# %%
IMAGENET = 1_281_167
cost = {}
for name in nets:
    fwd = macs[name].sum()
    train_macs = 3 * fwd - macs[name][0]
    epoch_flops = 2 * train_macs * IMAGENET
    cost[name] = epoch_flops
    print(
        f"{name}: step {train_macs / fwd:.2f} × forward = {2 * train_macs / 1e9:.1f} GFLOP per image; "
        f"one ImageNet epoch {epoch_flops / 1e15:.1f} PFLOP"
    )
    assert 2.9 < train_macs / fwd < 3.0

core = 2 * macs["ResNet-18"].sum() / seconds["ResNet-18"]  # this core's measured rate
days = cost["ResNet-18"] / core / 86400
print(f"at this core's {core / 1e9:.0f} GFLOP/s one ResNet-18 epoch would take {days:.0f} days")
# back of the envelope: 3 passes × 2 FLOPs per MAC × (1.8 or 4.1) GMACs × 1.28 M images
assert abs(cost["ResNet-18"] / (6 * 1.8e9 * IMAGENET) - 1) < 0.03
assert abs(cost["ResNet-50"] / (6 * 4.1e9 * IMAGENET) - 1) < 0.03

# %% [markdown]
# **Memory.** A training step must keep what the feedback path reads: every weight layer's input
# `y_l` (eq 4), every activation's output (its `φ'`, eqs 2–3), batch norm's normalised input and
# max pooling's choices. We add up what minibp's layers actually hold after the forward pass
# (arrays shared between layers counted once), check on a smaller image that it grows in
# proportion to the batch, and scale to a batch of 256.


# %%
def cached_bytes(net):
    seen = {}
    for layer in net.walk():
        for attr in ("x", "y", "xhat", "argmax"):
            a = getattr(layer, attr, None)
            if isinstance(a, np.ndarray):
                while a.base is not None:
                    a = a.base
                seen[id(a)] = a.nbytes
    return sum(seen.values())


small = resnet18((3, 64, 64), 10, width=8)
per_batch = []
for batch in (1, 2):
    small.forward(np.zeros((batch, 3, 64, 64), dtype=np.float32))
    per_batch.append(cached_bytes(small))
assert per_batch[1] == 2 * per_batch[0]  # proportional to the batch

memory = {}
for name, net in nets.items():
    net.forward(image)
    memory[name] = cached_bytes(net)
    weights_mb = 4 * net.n_params() / 1e6
    print(
        f"{name}: {memory[name] / 1e6:.0f} MB of activations per image, {256 * memory[name] / 1e9:.1f} GB "
        f"for a batch of 256; the parameters take {weights_mb:.0f} MB (×3 with gradients and momentum)"
    )
assert memory["ResNet-50"] > 3 * memory["ResNet-18"]

# %% [markdown]
# Activations, not weights, fill a GPU: a ResNet-50 batch of 256 needs tens of gigabytes. The
# rules without weight transport add only weight-sized arrays: a `B` per weight layer for FA, WM
# and KP (and for KP its gradient and momentum buffer too): tens to hundreds of megabytes
# (ResNet-18's `B` take 47 MB). WM also adds mirror
# passes, which exercise 3 prices.
#
# ## 5. The paper's ImageNet runs, as a minibp preset
#
# The settings the paper states in Section 6 (batch norm after the ReLU, ReLUs without
# bias-blocking, the learning rate dropping by 90 % at epoch 32) are in the preset
# `imagenet-resnet18` (and `imagenet-resnet50`). The paper's main text gives no learning rate,
# momentum, weight decay or batch size (it leaves them to its Appendix D.1, which is not in the
# text we work from); the preset takes them from the ResNet paper's ImageNet
# recipe (He et al. 2016: 0.1, 0.9, 1e-4, 256), and the number of epochs is minibp's choice
# (`minibp presets` lists every preset and its sources). A preset is the first layer of a config: any flag overrides it.

# %%
from minibp.presets import PRESETS  # noqa: E402

preset = PRESETS["imagenet-resnet18"]
paper_run = minibp.TrainConfig(**{**preset.settings, "rule": "kp", "backend": "numpy"})
assert paper_run.bn == "after" and paper_run.milestones == (32.0,) and paper_run.gamma == 0.1
assert not paper_run.wm_bias_blocking  # Section 6: "ReLUs without bias-blocking"
print(preset.description)
print(", ".join(f"{k}={v}" for k, v in preset.settings.items()))
print("on a GPU:  minibp train --preset imagenet-resnet18 --rule kp --backend cupy --data-dir /data --out runs/in18")
print("datasets in minibp:", list(minibp.data.DATASETS))

step = get_schedule(paper_run.schedule, epochs=paper_run.epochs, milestones=paper_run.milestones, gamma=paper_run.gamma)
assert step(0.1, 31.99) == 0.1 and math.isclose(step(0.1, 32.0), 0.01) and math.isclose(step(0.1, 60), 0.01)

# %% [markdown]
# ## 6. A ResNet-18 on this CPU, under all five rules
#
# The same network four channels wide instead of 64, on 32×32 images (the digits, enlarged 4× and
# copied into three colour channels), trained for 17 steps of 32 images under each rule; we time
# all but the first. Each step is `minibp.train_step`, the step `minibp.train` runs
# (`minibp/step.py`): forward (eq 1) → loss → `net.backward(dout, rule)` (eqs 2–4, and eq 17 for
# KP) → `opt.step` (eq 16, with momentum) → `rule.after_step` (WM's mirror mode, eqs 6–7).
#
# Seventeen steps are far too few for WM's `B` to learn much while training. So we mirror *before*
# training — 20 passes of noise through every layer, no data needed (the paper's Discussion:
# weight mirrors "could tune feedback paths in sleep or in utero").

# %%
digits = minibp.data.load_digits(flatten=False)
images = np.repeat(np.repeat(digits.x_train[:544], 4, axis=2), 4, axis=3).repeat(3, axis=1)
labels = digits.y_train[:544]
print("inputs", images.shape, images.dtype)

loss_fn = minibp.SoftmaxCrossEntropy()
tiny = {}
for name in RULES:
    net = resnet18((3, 32, 32), 10, width=4, seed=0)
    rule = minibp.WeightMirror(lr=0.1, decay=0.1) if name == "wm" else minibp.get_rule(name)
    net.init_feedback(rule, np.random.default_rng(1))
    if name == "wm":
        for _ in range(20):
            rule.mirror(net)  # mirror mode on noise, before any training
    opt = minibp.SGD(0.05, momentum=0.9, weight_decay=5e-3)
    losses, times = [], []
    for i in range(17):
        xb, yb = images[32 * i : 32 * (i + 1)], labels[32 * i : 32 * (i + 1)]
        t0 = time.perf_counter()
        result = minibp.train_step(net, rule, loss_fn, opt, xb, yb)  # eqs (1)-(4), (16)-(17); (6)-(7) for WM
        times.append(time.perf_counter() - t0)
        losses.append(float(result.loss))
    tiny[name] = {"loss": losses, "ms": 1000 * np.mean(times[1:]), "angles": minibp.matrix_angles(net, rule)}
    print(f"{rule_label(name)}: loss {losses[0]:.3f} → {losses[-1]:.3f}, {tiny[name]['ms']:.0f} ms/step")

for r in tiny.values():
    assert np.isfinite(r["loss"]).all()
    assert len(r["angles"]) == 21 and np.isfinite(r["angles"]).all()
assert tiny["bp"]["angles"] == [0.0] * 21
assert (np.array(tiny["wm"]["angles"]) < np.array(tiny["fa"]["angles"])).all()  # mirroring aligned every layer
assert (np.abs(np.array(tiny["ss"]["angles"]) - 37.1) < 5).all()  # arccos √(2/π), as in notebook 06

# WM's extra work, timed on its own: a mirror pass (128 noise samples through every layer)
net = resnet18((3, 32, 32), 10, width=4, seed=0)
wm_rule = minibp.WeightMirror()
net.init_feedback(wm_rule, np.random.default_rng(1))
wm_rule.mirror(net)  # once untimed, to warm up
t0 = time.perf_counter()
for _ in range(5):
    wm_rule.mirror(net)
mirror_ms = 1000 * (time.perf_counter() - t0) / 5
print(
    f"one mirror pass: {mirror_ms:.0f} ms; after every {wm_rule.every}th step that adds "
    f"{mirror_ms / wm_rule.every:.0f} ms per step, against BP's {tiny['bp']['ms']:.0f} ms step"
)

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.2), gridspec_kw={"width_ratios": [1, 2.5]})
a1.bar([rule_label(n) for n in RULES], [tiny[n]["ms"] for n in RULES], color=[RULE_COLORS[n] for n in RULES])
a1.set(ylabel="ms per step (one core)", title="ResNet-18, width 4, batch 32")
for name in RULES:
    a2.plot(range(1, 22), tiny[name]["angles"], "o-", ms=3, color=RULE_COLORS[name], label=rule_label(name))
a2.set(
    xlabel="weight layer (input → output)",
    ylabel="matrix angle (°)",
    ylim=(-3, 100),
    xticks=range(1, 22, 2),
    title="after 17 steps (WM mirrored 20 times before training)",
)
a2.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
save_figure(fig, "07_tiny_resnet18")
plt.show()
plt.close(fig)

# %% [markdown]
# What the figure shows:
#
# * **Time.** The five rules do the same work in a training step but for which matrix carries `δ`
#   back, plus, for KP, one more elementwise update per `B`, and for WM a mirror pass after every
#   4th step. Sixteen timed steps on a shared machine are noisy: from run to run the bars move by
#   tens of per cent, more than the rules differ, so read them as "about the same". WM's extra
#   cost is clearer timed on its own, as printed above: each pass sends 128 noise images through
#   every layer, which is a lot next to a 32-image batch of a network this small. At full size and
#   batch 256 the mirror passes cost under 1 % (exercise 3).
# * **Angles.** BP is 0 everywhere; SS sits at the 37° of Gaussian weights; FA stays near 90°; WM,
#   mirrored on noise alone, is within about 30° in every layer. KP has only begun: its `B` gets
#   the same updates as `W`, so it is aligned only where those updates already outweigh the random
#   start (here the first layers). Removing the start elsewhere takes weight decay over many steps
#   (notebook 06, section 3); the paper's ResNets needed about 20 epochs to bring KP near zero.
#
# ## Open-ended exercises
#
# 1. **ResNet-50 by hand.** From the stage structure alone (stem, 3/4/6/3 bottleneck blocks of
#    inner widths 64/128/256/512 and output 4× that, projection shortcuts where the shape changes,
#    two batch-norm parameters per channel, the 2048 → 1000 dense layer with biases) count
#    ResNet-50's parameters and compare with `net.n_params()`.
# 2. **GPU-hours.** Count ResNet-18's MACs per 224×224 image by hand, stage by stage (the stem,
#    the max pool's output size, each stage's spatial size), and check against section 3. Then
#    estimate how many GPU-hours 40 epochs of ImageNet would take on a GPU that sustains
#    100 TFLOP/s on this network, and on this CPU core.
# 3. **The price of no weight transport.** For ResNet-18 at full size, how many numbers do FA, WM and
#    KP add in feedback weights `B` (check by calling `net.init_feedback`), and how many MACs does
#    one mirror pass cost (each layer sees `batch_size` noise images; a convolution's noise
#    image is just big enough for 4×4 output positions)? With a mirror pass every 4th step, what
#    fraction of a training step of 256 images is that?
