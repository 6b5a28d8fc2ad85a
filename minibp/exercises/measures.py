"""Checkers for notebooks 06–09: the delta angle, a convolution's cost, a convolution's feedback
(a transposed convolution), a locally connected layer's mirror correlation, and the gradient of the
null primitive of the alignment family."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..layers.conv import Conv2D, conv2d, conv2d_transpose, conv2d_weight_grad
from ..layers.local import local_weight_grad
from ..metrics import angle
from ..network import Network
from ..rules.primitives import DenseMaps, null
from ..threads import forward_macs
from .core import Case, check, rng

Array = np.ndarray


# ---------------------------------------------------------------- notebook 06: the delta angle


def delta_angle_reference(a: Array, b: Array) -> float:
    """Fig 4's angle, in degrees, between ``vec(a)`` and ``vec(b)`` (:func:`minibp.angle`)."""
    return angle(a, b)


def check_delta_angle(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 06: ``student(a, b)`` must return the angle in degrees between two whole batches
    of errors, each flattened to one vector (the paper's delta angle)."""
    g, cases = rng(), []
    for n, m, mix in [(6, 5, 0.8), (4, 9, 2.0), (10, 3, 0.3)]:
        a = g.standard_normal((n, m))
        b = 2.5 * a + mix * g.standard_normal((n, m))  # a few tens of degrees apart, unequal norms
        u, v = a.ravel(), b.ravel()
        cos = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
        rows = [angle(r, s) for r, s in zip(a, b)]
        cases.append(
            Case(
                dict(a=a, b=b),
                delta_angle_reference(a, b),
                [
                    ("radians: the paper's angles are in degrees (np.degrees).", np.arccos(cos)),
                    ("it returns the cosine; the angle is arccos of it, in degrees.", cos),
                    ("one angle per example: flatten each batch to one vector first (the angle of vec(δ)).", rows),
                    (
                        "it averages the per-example angles: the delta angle is that of the whole flattened batch.",
                        float(np.mean(rows)),
                    ),
                    (
                        "not normalised: divide the dot product by both norms before arccos.",
                        float(np.degrees(np.arccos(np.clip(u @ v, -1, 1)))),
                    ),
                    (
                        "it returns 180° minus the angle: the sign of the cosine is lost or flipped.",
                        180 - float(np.degrees(np.arccos(cos))),
                    ),
                ],
            )
        )
    return check("the delta angle (Fig 4)", student, delta_angle_reference, cases, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- notebook 07: a convolution's cost


def conv_macs_reference(c_in: int, c_out: int, k: int, h: int, w: int, stride: int, padding: int) -> int:
    """Multiply-accumulates of one ``k×k`` convolution on one ``c_in × h × w`` image (:func:`forward_macs`)."""
    layer = Conv2D(c_in, c_out, k, stride=stride, padding=padding, bias=False)
    return forward_macs(Network([layer]), np.zeros((1, c_in, h, w), dtype=np.float32))


def check_conv_macs(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 07: ``student(c_in, c_out, k, h, w, stride, padding)`` must count one image's MACs."""
    cases = []
    for c_in, c_out, k, h, w, stride, padding in [
        (3, 64, 7, 224, 224, 2, 2),
        (16, 32, 3, 15, 17, 2, 1),
        (8, 8, 5, 12, 10, 1, 0),
    ]:
        per_pos = c_out * c_in * k * k
        ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        cases.append(
            Case(
                dict(c_in=c_in, c_out=c_out, k=k, h=h, w=w, stride=stride, padding=padding),
                conv_macs_reference(c_in, c_out, k, h, w, stride, padding),
                [
                    (
                        "counted at every input pixel: a convolution works once per output position, H_out × W_out.",
                        per_pos * h * w,
                    ),
                    (
                        "padding left out: H_out = ⌊(H + 2·padding − k) / stride⌋ + 1.",
                        per_pos * ((h - k) // stride + 1) * ((w - k) // stride + 1),
                    ),
                    (
                        "stride left out: H_out = ⌊(H + 2·padding − k) / stride⌋ + 1.",
                        per_pos * (h + 2 * padding - k + 1) * (w + 2 * padding - k + 1),
                    ),
                    (
                        "FLOPs, not MACs: one multiply-accumulate is one multiply and one add; count it once.",
                        2 * per_pos * ho * wo,
                    ),
                    (
                        "kernel counted once per side: each position multiplies a k×k patch, k² weights per pair.",
                        c_out * c_in * k * ho * wo,
                    ),
                    (
                        "input channels left out: each output value sums over all C_in channels' patches.",
                        c_out * k * k * ho * wo,
                    ),
                ],
            )
        )
    return check("a convolution's multiply-accumulates", student, conv_macs_reference, cases, rtol=0, atol=0.5)


# ---------------------------------------------------------------- notebook 08: a convolution's feedback


def conv_feedback_reference(delta: Array, F: Array, x_shape: tuple[int, ...], stride: int, padding: int) -> Array:
    """Eq (2)/(3) for a convolution: the transposed convolution ``convᵀ(δ_{l+1}, F)``, of shape ``x_shape``."""
    return conv2d_transpose(delta, F, tuple(x_shape), stride, padding, route="col2im")  # eq (2)/(3)


def check_conv_feedback(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 08: ``student(delta, F, x_shape, stride, padding)`` must carry ``δ_{l+1}`` back through the
    kernel ``F`` (``(C_out, C_in, k, k)``) to an image of shape ``x_shape``: a transposed convolution."""
    g, cases = rng(), []
    for n, c_in, c_out, k, side, stride, padding in [
        (2, 3, 3, 3, 6, 1, 1),
        (3, 2, 4, 3, 7, 2, 1),
        (2, 4, 2, 2, 5, 1, 0),
    ]:
        x_shape = (n, c_in, side, side)
        F = g.standard_normal((c_out, c_in, k, k))
        ho = (side + 2 * padding - k) // stride + 1
        delta = g.standard_normal((n, c_out, ho, ho))
        want = conv_feedback_reference(delta, F, x_shape, stride, padding)
        padded = (n, c_in, side + 2 * padding, side + 2 * padding)
        wide = conv2d_transpose(delta, F, padded, stride, 0, route="col2im")
        mistakes = [
            (
                "kernel flipped the wrong way: as a scatter, convᵀ adds δ times F as it is; rewritten as a stride-1 "
                "convolution, it uses F flipped in both spatial axes.",
                conv_feedback_reference(delta, F[:, :, ::-1, ::-1], x_shape, stride, padding),
            ),
            ("sign flipped: eq (2)/(3) carry δ back with no minus sign.", -want),
            (
                "padding not cropped: convᵀ returns an image of the input's own shape; drop the border of width "
                "padding.",
                wide,
            ),
        ]
        if c_in == c_out and stride == 1:
            mistakes.append(
                (
                    "channel axes not swapped: as a convolution, convᵀ uses F flipped in space with C_in and "
                    "C_out exchanged.",
                    conv2d(delta, F[:, :, ::-1, ::-1], 1, k - 1 - padding),
                )
            )
        cases.append(Case(dict(delta=delta, F=F, x_shape=x_shape, stride=stride, padding=padding), want, mistakes))
    return check("eq (3) for a convolution: the transposed convolution", student, conv_feedback_reference, cases)


# ---------------------------------------------------------------- notebook 09: the null primitive


def null_grad_reference(x: Array, W: Array, B: Array) -> Array:
    """The null primitive's gradient (Kunin et al. 2020): ``∇_B E‖B W x‖² = 2 E[(B r) rᵀ]``, ``r = W x``."""
    maps = DenseMaps(W)
    return null(maps, B, x, maps.forward(x), with_loss=False)[1]


def check_null_grad(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 09: ``student(x, W, B)`` must return the gradient in ``B`` of ``E‖B W x‖²`` over the batch ``x``."""
    g, cases = rng(), []
    for n, n_in, n_out in [(6, 4, 4), (7, 5, 3), (3, 2, 6)]:
        x, W, B = g.standard_normal((n, n_in)), g.standard_normal((n_out, n_in)), g.standard_normal((n_in, n_out))
        r = x @ W.T
        u = r @ B.T
        outer = u.T @ r  # Σ_n (B r_n) r_nᵀ
        mistakes = [
            ("missing the 2: the derivative of a square ‖v‖² is 2v.", outer / n),
            ("missing 1/N: E is the mean over the batch.", 2 * outer),
            (
                "sign flipped: this is the gradient of a loss to be minimised; descent subtracts it later.",
                -2 * outer / n,
            ),
            (
                "it uses x where r = W x belongs: the null loss is ‖B r‖² with r the forward projection.",
                2 * (x @ B.T).T @ x / n if n_in == n_out else None,
            ),
            ("transposed: the gradient has B's shape (n_in, n_out), E[(B r) rᵀ].", 2 * outer.T / n),
        ]
        cases.append(Case(dict(x=x, W=W, B=B), null_grad_reference(x, W, B), [m for m in mistakes if m[1] is not None]))
    return check("the null primitive's gradient", student, null_grad_reference, cases)


# ---------------------------------------------------------------- notebook 08: a locally connected layer's mirror


def local_mirror_reference(noise: Array, post: Array, k: int, stride: int) -> Array:
    """Eq (7)'s correlation for a locally connected layer: at every output position ``(r, s)``, the mean over
    the batch of ``y_{l+1}[:, :, r, s] ⊗ patch(y_l, r, s)``, in ``W``'s shape ``(Ho, Wo, C_out, C_in, k, k)``."""
    n, c_out, ho, wo = post.shape
    shape = (ho, wo, c_out, noise.shape[1], k, k)
    return local_weight_grad(noise, post, shape, stride, 0) / n  # eq (7), one B per position


def check_local_mirror(student: Callable[..., Any]) -> Callable[..., Any]:
    """Notebook 08: ``student(noise, post, k, stride)`` must return each position's mirror correlation (eq 7)
    of a locally connected layer: ``noise`` ``(N, C_in, H, W)`` unpadded, ``post`` ``(N, C_out, Ho, Wo)``."""
    g, cases = rng(), []
    for n, c_in, c_out, k, side, stride in [(5, 3, 3, 3, 5, 1), (4, 2, 3, 3, 7, 2), (6, 1, 2, 2, 4, 1)]:
        noise = g.standard_normal((n, c_in, side, side))
        ho = (side - k) // stride + 1
        post = g.standard_normal((n, c_out, ho, ho))
        want = local_mirror_reference(noise, post, k, stride)
        shared = conv2d_weight_grad(noise, post, (c_out, c_in, k, k), stride, 0) / n
        mistakes = [
            (
                "averaged over the positions too: each position's B is its own, so E is over the batch alone.",
                want / ho**2,
            ),
            ("summed over the batch: eq (7) takes the mean over the noise samples.", want * n),
            (
                "tied back into one kernel: every position got the sum over all positions, a convolution's "
                "correlation, where a locally connected layer keeps one per position.",
                np.broadcast_to(shared, want.shape),
            ),
            (
                "tied back into one kernel and averaged: a convolution's correlation at every position, where "
                "a locally connected layer keeps each position's own.",
                np.broadcast_to(shared / ho**2, want.shape),
            ),
        ]
        if c_in == c_out:
            mistakes.append(
                ("transposed: B has W's shape, (C_out, C_in, k, k) per position.", want.transpose(0, 1, 3, 2, 4, 5))
            )
        if stride > 1:
            mistakes.append(
                (
                    "the patches ignore the stride: position (r, s) sees the patch at (r·stride, s·stride).",
                    local_weight_grad(noise[:, :, : ho + k - 1, : ho + k - 1], post, want.shape, 1, 0) / n,
                )
            )
        cases.append(Case(dict(noise=noise, post=post, k=k, stride=stride), want, mistakes))
    return check("eq (7) for a locally connected layer", student, local_mirror_reference, cases)
