"""Each exercise checker passes a right answer, names each mistake it knows, and falls back on a stub.

The right answers and the mistakes are written here by hand in NumPy, independently of the
references in minibp.exercises (which call minibp's layers and rules).
"""

from __future__ import annotations

import numpy as np
import pytest

from minibp import exercises
from minibp.exercises import ExerciseMistake


def _fwd(x, W, b=None):
    return x @ W.T + (0 if b is None else b)


def _mirror(B, W, b, noise, lr, decay, *, bias=False, phi=np.tanh, mean=True, decay_factor=None, hebb=1.0):
    y = phi(_fwd(noise, W, b if bias else None))
    corr = noise.T @ y / (len(noise) if mean else 1)
    keep = (1 - decay) if decay_factor is None else decay_factor
    return keep * B + hebb * lr * corr


def _conv_transpose(delta, F, x_shape, stride, padding, flip=False):
    """convᵀ as a scatter over kernel taps, written out here independently."""
    n, c_in, h, w = x_shape
    k = F.shape[2]
    if flip:
        F = F[:, :, ::-1, ::-1]
    out = np.zeros((n, c_in, h + 2 * padding, w + 2 * padding))
    ho, wo = delta.shape[2:]
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += np.einsum(
                "nohw,oc->nchw", delta, F[:, :, i, j]
            )
    return out[:, :, padding : padding + h, padding : padding + w]


def _local_corr(noise, post, k, stride, *, over=None, flip_channels=False, tied=False, step=None):
    """Each position's mean over the batch of post ⊗ patch, written out position by position here."""
    n, c_out, ho, wo = post.shape
    step = stride if step is None else step
    out = np.zeros((ho, wo, c_out, noise.shape[1], k, k))
    for r in range(ho):
        for s in range(wo):
            patch = noise[:, :, r * step : r * step + k, s * step : s * step + k]
            out[r, s] = np.einsum("no,nchw->ochw", post[:, :, r, s], patch)
    if tied:
        out[...] = out.sum(axis=(0, 1))
    if flip_channels:
        out = out.transpose(0, 1, 3, 2, 4, 5)
    return out / (n if over is None else over)


def _angle(a, b):
    u, v = a.ravel(), b.ravel()
    return float(np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))


def _macs(c_in, c_out, k, h, w, stride, padding, *, ho=None, wo=None, kk=None):
    ho = (h + 2 * padding - k) // stride + 1 if ho is None else ho
    wo = (w + 2 * padding - k) // stride + 1 if wo is None else wo
    return c_out * c_in * (k * k if kk is None else kk) * ho * wo


# checker: (right answer, {phrase the message must contain: wrong answer})
CASES = {
    "check_eq2_delta": (
        lambda delta_next, W, y: (1 - y**2) * (delta_next @ W),
        {
            "sign flipped": lambda delta_next, W, y: -(1 - y**2) * (delta_next @ W),
            "missing φ'": lambda delta_next, W, y: delta_next @ W,
            "1 − tanh(y)²": lambda delta_next, W, y: (1 - np.tanh(y) ** 2) * (delta_next @ W),
            "1 − y:": lambda delta_next, W, y: (1 - y) * (delta_next @ W),
            "transposed": lambda delta_next, W, y: (1 - y**2) * (delta_next @ W.T),
            "wrong shape": lambda delta_next, W, y: ((1 - y**2) * (delta_next @ W)).sum(axis=0),
        },
    ),
    "check_eq3_delta": (
        lambda delta_next, B, y: (1 - y**2) * (delta_next @ B.T),
        {
            "sign flipped": lambda delta_next, B, y: -(1 - y**2) * (delta_next @ B.T),
            "missing φ'": lambda delta_next, B, y: delta_next @ B.T,
            "1 − tanh(y)²": lambda delta_next, B, y: (1 - np.tanh(y) ** 2) * (delta_next @ B.T),
            "transposed": lambda delta_next, B, y: (1 - y**2) * (delta_next @ B),
        },
    ),
    "check_eq4_update": (
        lambda delta_next, y_prev, lr: -lr * delta_next.T @ y_prev,
        {
            "sign flipped": lambda delta_next, y_prev, lr: lr * delta_next.T @ y_prev,
            "missing η": lambda delta_next, y_prev, lr: -delta_next.T @ y_prev,
            "1/N applied twice": lambda delta_next, y_prev, lr: -lr * delta_next.T @ y_prev / len(y_prev),
            "transposed": lambda delta_next, y_prev, lr: -lr * y_prev.T @ delta_next,
        },
    ),
    "check_eq5_step": (
        lambda B, x, y, lr, decay: (1 - decay) * B + lr * x.T @ y / len(x),
        {
            "missing 1/N": lambda B, x, y, lr, decay: (1 - decay) * B + lr * x.T @ y,
            "decay missing": lambda B, x, y, lr, decay: B + lr * x.T @ y / len(x),
            "decay applied twice": lambda B, x, y, lr, decay: (1 - decay) * ((1 - decay) * B) + lr * x.T @ y / len(x),
            "sign flipped": lambda B, x, y, lr, decay: (1 - decay) * B - lr * x.T @ y / len(x),
            "returns ΔB": lambda B, x, y, lr, decay: -decay * B + lr * x.T @ y / len(x),
            "transposed": lambda B, x, y, lr, decay: (1 - decay) * B + lr * y.T @ x / len(x),
        },
    ),
    "check_mirror_step": (
        _mirror,
        {
            "bias not blocked": lambda B, W, b, noise, lr, decay: _mirror(B, W, b, noise, lr, decay, bias=True),
            "missing φ": lambda B, W, b, noise, lr, decay: _mirror(B, W, b, noise, lr, decay, phi=lambda z: z),
            "missing 1/N": lambda B, W, b, noise, lr, decay: _mirror(B, W, b, noise, lr, decay, mean=False),
            "decay missing": lambda B, W, b, noise, lr, decay: _mirror(B, W, b, noise, lr, decay, decay_factor=1.0),
            "decay applied twice": lambda B, W, b, noise, lr, decay: _mirror(
                B, W, b, noise, lr, decay, decay_factor=(1 - decay) ** 2
            ),
            "sign flipped": lambda B, W, b, noise, lr, decay: _mirror(B, W, b, noise, lr, decay, hebb=-1.0),
            "returns ΔB": lambda B, W, b, noise, lr, decay: _mirror(B, W, b, noise, lr, decay) - B,
            "transposed": lambda B, W, b, noise, lr, decay: (
                (1 - decay) * B + lr * np.tanh(noise @ W.T).T @ noise / len(noise)
            ),
        },
    ),
    "check_kp_step": (
        lambda B, y_prev, delta_next, lr, decay: B - lr * y_prev.T @ delta_next - decay * B,
        {
            "sign flipped": lambda B, y_prev, delta_next, lr, decay: B + lr * y_prev.T @ delta_next - decay * B,
            "decay missing": lambda B, y_prev, delta_next, lr, decay: B - lr * y_prev.T @ delta_next,
            "decay applied twice": lambda B, y_prev, delta_next, lr, decay: (
                (1 - decay) * (B - lr * y_prev.T @ delta_next - decay * B)
            ),
            "decay scaled by η": lambda B, y_prev, delta_next, lr, decay: B - lr * (y_prev.T @ delta_next + decay * B),
            "1/N applied twice": lambda B, y_prev, delta_next, lr, decay: (
                B - lr * y_prev.T @ delta_next / len(y_prev) - decay * B
            ),
            "returns ΔB": lambda B, y_prev, delta_next, lr, decay: -lr * y_prev.T @ delta_next - decay * B,
            "transposed": lambda B, y_prev, delta_next, lr, decay: B - lr * delta_next.T @ y_prev - decay * B,
        },
    ),
    "check_delta_angle": (
        _angle,
        {
            "radians": lambda a, b: np.radians(_angle(a, b)),
            "cosine": lambda a, b: float(np.cos(np.radians(_angle(a, b)))),
            "one angle per example": lambda a, b: np.array([_angle(r, s) for r, s in zip(a, b)]),
            "averages the per-example": lambda a, b: float(np.mean([_angle(r, s) for r, s in zip(a, b)])),
            "not normalised": lambda a, b: float(np.degrees(np.arccos(np.clip(a.ravel() @ b.ravel(), -1, 1)))),
            "180° minus": lambda a, b: 180 - _angle(a, b),
            "wrong shape": lambda a, b: np.full(3, _angle(a, b)),
        },
    ),
    "check_conv_macs": (
        _macs,
        {
            "every input pixel": lambda c_in, c_out, k, h, w, stride, padding: _macs(
                c_in, c_out, k, h, w, stride, padding, ho=h, wo=w
            ),
            "padding left out": lambda c_in, c_out, k, h, w, stride, padding: _macs(c_in, c_out, k, h, w, stride, 0),
            "stride left out": lambda c_in, c_out, k, h, w, stride, padding: _macs(c_in, c_out, k, h, w, 1, padding),
            "FLOPs, not MACs": lambda c_in, c_out, k, h, w, stride, padding: (
                2 * _macs(c_in, c_out, k, h, w, stride, padding)
            ),
            "kernel counted once per side": lambda c_in, c_out, k, h, w, stride, padding: _macs(
                c_in, c_out, k, h, w, stride, padding, kk=k
            ),
            "input channels left out": lambda c_in, c_out, k, h, w, stride, padding: _macs(
                1, c_out, k, h, w, stride, padding
            ),
        },
    ),
    "check_conv_feedback": (
        _conv_transpose,
        {
            "kernel flipped the wrong way": lambda delta, F, x_shape, stride, padding: _conv_transpose(
                delta, F, x_shape, stride, padding, flip=True
            ),
            "sign flipped": lambda delta, F, x_shape, stride, padding: (
                -_conv_transpose(delta, F, x_shape, stride, padding)
            ),
            "padding not cropped": lambda delta, F, x_shape, stride, padding: _conv_transpose(
                delta, F, (x_shape[0], x_shape[1], x_shape[2] + 2 * padding, x_shape[3] + 2 * padding), stride, 0
            ),
            "channel axes not swapped": lambda delta, F, x_shape, stride, padding: _conv_as_convolution(
                delta, F[:, :, ::-1, ::-1], padding
            ),
            "the wrong way": lambda delta, F, x_shape, stride, padding: _conv_as_convolution(
                delta, F.transpose(1, 0, 2, 3), padding
            ),
        },
    ),
    "check_local_mirror": (
        _local_corr,
        {
            "averaged over the positions too": lambda noise, post, k, stride: _local_corr(
                noise, post, k, stride, over=post.shape[0] * post.shape[2] * post.shape[3]
            ),
            "summed over the batch": lambda noise, post, k, stride: _local_corr(noise, post, k, stride, over=1),
            "tied back into one kernel: every position": lambda noise, post, k, stride: _local_corr(
                noise, post, k, stride, tied=True
            ),
            "tied back into one kernel and averaged": lambda noise, post, k, stride: _local_corr(
                noise, post, k, stride, tied=True, over=post.shape[0] * post.shape[2] * post.shape[3]
            ),
            "transposed": lambda noise, post, k, stride: _local_corr(noise, post, k, stride, flip_channels=True),
            "ignore the stride": lambda noise, post, k, stride: _local_corr(noise, post, k, stride, step=1),
        },
    ),
    "check_null_grad": (
        lambda x, W, B: 2 * ((x @ W.T) @ B.T).T @ (x @ W.T) / len(x),
        {
            "missing the 2": lambda x, W, B: ((x @ W.T) @ B.T).T @ (x @ W.T) / len(x),
            "missing 1/N": lambda x, W, B: 2 * ((x @ W.T) @ B.T).T @ (x @ W.T),
            "sign flipped": lambda x, W, B: -2 * ((x @ W.T) @ B.T).T @ (x @ W.T) / len(x),
            "uses x where r": lambda x, W, B: 2 * (x @ B.T).T @ x / len(x),
            "transposed": lambda x, W, B: 2 * (x @ W.T).T @ ((x @ W.T) @ B.T) / len(x),
        },
    ),
}


def _conv_as_convolution(delta, K, padding):
    """A stride-1 'valid' correlation of δ, zero-padded by k − 1 − padding, with the kernel K (C_in, C_out, k, k)."""
    k = K.shape[2]
    p = k - 1 - padding
    d = np.pad(delta, ((0, 0), (0, 0), (p, p), (p, p)))
    n, _, h, w = d.shape
    out = np.zeros((n, K.shape[0], h - k + 1, w - k + 1))
    for i in range(k):
        for j in range(k):
            out += np.einsum("nohw,co->nchw", d[:, :, i : i + h - k + 1, j : j + w - k + 1], K[:, :, i, j])
    return out


def _names(item):
    return [f"{item[0]}: {p}" for p in item[1][1]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_passes_the_right_answer(name, capsys):
    right = CASES[name][0]
    assert getattr(exercises, name)(right) is right
    assert "[correct]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "phrase"), [(n, p) for n in sorted(CASES) for p in CASES[n][1]], ids=lambda v: str(v)[:24]
)
def test_checker_names_the_mistake(name, phrase):
    wrong = CASES[name][1][phrase]
    with pytest.raises(ExerciseMistake) as info:
        getattr(exercises, name)(wrong)
    assert phrase in str(info.value), str(info.value)
    message = str(info.value).split(": ", 1)[1]
    assert message.count(". ") == 0, f"more than one sentence: {message}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_stub_falls_back_on_minibp_and_strict_mode_raises(name, monkeypatch, capsys):
    def stub(**kwargs):
        raise NotImplementedError

    monkeypatch.delenv(exercises.STRICT_ENV, raising=False)
    fallback = getattr(exercises, name)(stub)
    assert fallback is not stub
    assert "[not done]" in capsys.readouterr().out
    assert getattr(exercises, name)(fallback) is fallback  # minibp's own answer passes its own checker
    monkeypatch.setenv(exercises.STRICT_ENV, "1")
    with pytest.raises(NotImplementedError):
        getattr(exercises, name)(stub)


def test_an_unexplained_difference_and_an_error_are_reported():
    right = CASES["check_eq2_delta"][0]
    with pytest.raises(ExerciseMistake, match="differ from minibp's by up to"):
        exercises.check_eq2_delta(lambda delta_next, W, y: 1.01 * right(delta_next, W, y))
    with pytest.raises(ExerciseMistake, match="raises KeyError"):
        exercises.check_eq2_delta(lambda delta_next, W, y: {}["x"])


def test_changing_an_input_in_place_is_reported():
    def in_place(B, x, y, lr, decay):
        B *= 1 - decay
        B += lr * x.T @ y / len(x)
        return B

    with pytest.raises(ExerciseMistake, match="in place"):
        exercises.check_eq5_step(in_place)


def test_kp_decay_applied_twice_is_named_in_both_forms():
    def twice_subtracted(B, y_prev, delta_next, lr, decay):
        return B - lr * y_prev.T @ delta_next - 2 * decay * B

    with pytest.raises(ExerciseMistake, match="decay applied twice"):
        exercises.check_kp_step(twice_subtracted)
