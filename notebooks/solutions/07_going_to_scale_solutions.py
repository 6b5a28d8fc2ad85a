# %% [markdown]
# # 07 — Going to scale: worked solutions
#
# Self-contained: each solution builds what it needs. Counting is done by hand from the
# architecture, then checked against minibp's own networks.

# %%
import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import minibp
from minibp.layers import Conv2D
from minibp.layers.conv import out_size
from minibp.models import resnet18, resnet50
from minibp.plots import RULE_COLORS, save_figure

threadpool_limits(1)
IMAGENET = 1_281_167

# %% [markdown]
# ## Exercise 1 — ResNet-50's parameters by hand
#
# A convolution has `C_in · C_out · k²` weights (no bias: batch norm follows); a batch norm has
# a scale and a shift per channel. A bottleneck block of inner width `w` taking `c_in` channels:
# 1×1 `c_in → w`, 3×3 `w → w`, 1×1 `w → 4w`, three batch norms (`w`, `w`, `4w` channels), and a
# projection shortcut (1×1 `c_in → 4w` and a batch norm) where the shape changes — the first block
# of every stage. The paper's variant moves the batch norms after the ReLUs but keeps their number.


# %%
def bn(c):
    return 2 * c


def bottleneck(c_in, w, project):
    main = c_in * w + bn(w) + 9 * w * w + bn(w) + w * 4 * w + bn(4 * w)
    return main + (c_in * 4 * w + bn(4 * w) if project else 0)


count = {"stem": 3 * 64 * 7 * 7 + bn(64)}
c_in = 64
for stage, (blocks, w) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
    count[f"stage {stage + 1}"] = sum(bottleneck(c_in if b == 0 else 4 * w, w, project=b == 0) for b in range(blocks))
    c_in = 4 * w
count["dense"] = 2048 * 1000 + 1000
total = sum(count.values())
for part, n in count.items():
    print(f"{part:8s} {n:>12,}")
print(f"{'total':8s} {total:>12,}   minibp: {resnet50().n_params():,}")
assert total == resnet50().n_params() == 25_557_032

# %% [markdown]
# Over half the parameters (15 M of 25.6 M) are in the last stage, and 2 M in the classifier.

# %% [markdown]
# ## Exercise 2 — ResNet-18's MACs by hand, and GPU-hours
#
# Sizes: the stem's stride-2 7×7 convolution takes 224 to 112, the stride-2 max pool to 56, and
# stages 2–4 halve it again: 56, 28, 14, 7. A basic block has two 3×3 convolutions; the first
# block of stages 2–4 has stride 2 in its first convolution and a 1×1 stride-2 projection.

# %%
hand = {"stem": 64 * 3 * 7 * 7 * 112 * 112}
size, c_in = 56, 64
for stage, c in enumerate((64, 128, 256, 512)):
    if stage > 0:
        size //= 2
    first = c * c_in * 9 * size * size  # the first 3×3, strided from the previous stage in stages 2-4
    rest = 3 * c * c * 9 * size * size  # the other three 3×3 convolutions
    projection = c * c_in * size * size if stage > 0 else 0
    hand[f"stage {stage + 1}"] = first + rest + projection
    c_in = c
hand["dense"] = 512 * 1000

net = resnet18()
net.forward(np.zeros((1, 3, 224, 224), dtype=np.float32))
engine = 0
for layer in net.weight_layers:
    if isinstance(layer, Conv2D):
        h = out_size(layer.x.shape[2], layer.k, layer.stride, layer.padding)
        engine += layer.c_out * layer.c_in * layer.k**2 * h * h
    else:
        engine += layer.W.size
for part, n in hand.items():
    print(f"{part:8s} {n / 1e6:8.1f} M MACs")
print(f"total by hand {sum(hand.values()):,}, from the network {engine:,}")
assert sum(hand.values()) == engine

# %% [markdown]
# A training step costs `3F − F_stem` MACs (notebook 07, section 4), two FLOPs each. At a sustained
# rate `R` FLOP/s, `E` epochs take `E · 1,281,167 · 2 · (3F − F_stem) / R` seconds.

# %%
train_flops = 2 * (3 * engine - hand["stem"])
epochs = 40
rates = {"GPU at 100 TFLOP/s": 100e12, "GPU at 10 TFLOP/s": 10e12, "one CPU core at 30 GFLOP/s": 30e9}
hours = {name: epochs * IMAGENET * train_flops / r / 3600 for name, r in rates.items()}
for name, h in hours.items():
    print(f"{name:28s} {h:10,.1f} hours ({h / 24:,.1f} days)")
# back of the envelope: 40 epochs × 6 FLOPs per MAC-pass × 1.8 GMACs × 1.28 M images at 100 TFLOP/s
assert abs(hours["GPU at 100 TFLOP/s"] / (40 * 6 * 1.8e9 * IMAGENET / 100e12 / 3600) - 1) < 0.03

fig, ax = plt.subplots(figsize=(6, 2.5))
ax.barh(list(hours), list(hours.values()), color=RULE_COLORS["bp"])
ax.set(xscale="log", xlabel="hours for 40 ImageNet epochs of ResNet-18")
fig.tight_layout()
save_figure(fig, "07_solution_gpu_hours")
plt.show()
plt.close(fig)

# %% [markdown]
# About 1.5 hours at a sustained 100 TFLOP/s, 15 hours at 10 TFLOP/s (roughly a GPU in plain float32
# without its matrix units), and over half a year on one CPU core. *Sustained* is the catch: a real
# run also spends time on data loading and decoding, batch norm and the optimizer, which do few
# FLOPs but move a lot of memory, so measured times are several times the FLOP estimate. The
# paper's five rules times several seeds times two networks multiply all of this.

# %% [markdown]
# ## Exercise 3 — the price of no weight transport
#
# **Memory.** FA, WM and KP keep one `B` of `W`'s size per weight layer; KP trains it, so it also
# gets a gradient and a momentum buffer.

# %%
weights = sum(layer.W.size for layer in net.weight_layers)
net.init_feedback(minibp.get_rule("fa"), np.random.default_rng(1))
feedback = sum(layer.B.size for layer in net.weight_layers)
print(f"B adds {feedback:,} numbers ({4 * feedback / 1e6:.0f} MB in float32); KP ×3: {12 * feedback / 1e6:.0f} MB")
assert feedback == weights == 11_678_912

# %% [markdown]
# **Compute.** A mirror pass sends `batch_size` noise samples through every weight layer
# (`W y_l`) and forms the correlation `y_l y_{l+1}ᵀ` (eq 7): two products of the layer's size per
# sample and per output position. A convolution's noise image is `k + stride·3` pixels wide, so
# that without padding it has exactly 4×4 output positions.

# %%
wm = minibp.WeightMirror()
mirror_macs = 0
for layer in net.weight_layers:
    if isinstance(layer, Conv2D):
        side = layer.mirror_input_shape[1]
        positions = out_size(side, layer.k, layer.stride, 0) ** 2
        assert positions == 16
        mirror_macs += 2 * layer.W.size * positions * wm.batch_size
    else:
        mirror_macs += 2 * layer.W.size * wm.batch_size
step_macs = 256 * (3 * engine - hand["stem"])
overhead = mirror_macs / wm.every / step_macs
print(
    f"one mirror pass {mirror_macs / 1e9:.1f} GMACs; a training step of 256 images {step_macs / 1e12:.2f} TMACs; "
    f"mirroring every {wm.every}th step adds {overhead:.2%}"
)
assert overhead < 0.01

# %% [markdown]
# About 0.8 %: at ImageNet scale, mirroring is almost free — the noise images are tiny next to
# 224×224 photographs. The costs in notebook 07's tiny run were the other way round because there
# the network and its images were tiny too, while the mirror batch stayed at 128 samples.
