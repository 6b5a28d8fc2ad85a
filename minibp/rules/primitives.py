"""The five primitives of Kunin et al. (2020): local losses on the feedback weights ``B``, each
with its gradient.

Kunin, Nayebi, Sagastuy-Brena, Ganguli, Bloom & Yamins, *Two Routes to Scalable Credit
Assignment without Weight Symmetry* (ICML 2020), Section 3 and its Table 1, write every rule
that learns ``B`` as gradient descent on a weighted sum of five layer-wise losses, the
"primitives". Their definitions are those of the authors' code (``neuroailab/neural-alignment``,
``Alignments/primitives.py``), restated in minibp's layout. For one dense layer with input
``x ∈ ℝⁿ`` (the rows of a batch), ``W ∈ ℝ^{m×n}`` and ``B ∈ ℝ^{n×m}`` (the shape of ``Wᵀ``):
forward projection ``r = W x`` (or ``φ(W x)``, see :mod:`.family`), backward projection
``s = Bᵀ x``, ``E[·]`` the mean over the batch.

=============  ==========================  ==============================  ========================
primitive      loss                        gradient ``∇_B``                 function
=============  ==========================  ==============================  ========================
decay          ``‖B‖²``                    ``2 B``                          :func:`decay`
sparse         ``E‖r‖² + E‖s‖²``           ``2 E[x sᵀ]``                    :func:`sparse`
null           ``E‖B r‖²``                 ``2 E[(B r) rᵀ]``                :func:`null`
null, reversed ``E‖Wᵀ s‖²``                ``2 E[x (W Wᵀ s)ᵀ]``             :func:`null_reversed`
self           ``−tr(B W)``                ``−Wᵀ``                          :func:`self_`
amp            ``−E[sᵀ r]``                ``−E[x rᵀ]``, WM's Hebbian term  :func:`amp`
=============  ==========================  ==============================  ========================

**Convolutions.** A convolution is the dense layer applied to every patch, so each primitive
keeps its form with the three linear maps replaced by their convolutional counterparts: ``W x``
by ``W ⋆ x`` (:func:`~minibp.layers.conv.conv2d`), ``Bᵀ x`` by the convolution of ``x`` with
the kernel ``B`` (which has ``W``'s layout), ``B r`` by the transposed convolution of ``r`` with
the kernel ``B`` (the map the feedback path uses, eq 3), ``E[a bᵀ]`` by the kernel correlation
:func:`~minibp.layers.conv.conv2d_weight_grad`, and ``E`` by the mean over every patch (batch ×
output positions), as the weight mirror's correlation is. Each gradient then follows from the
adjoint pairs: ``convᵀ(·, K)`` is the adjoint of ``conv(·, K)`` in the image, and
``conv2d_weight_grad(a, ·)`` is the adjoint of ``conv(a, ·)`` in the kernel.

The maps of one layer are an object (:class:`DenseMaps`, :class:`ConvMaps`, :class:`LocalMaps` for a
locally connected layer, whose ``E`` is over the batch alone) chosen once by
:func:`layer_maps`; each primitive is written once, on top of them, and returns
``(loss, gradient)``. Every primitive takes the same arguments ``(maps, B, x, r)``, so a rule is
a table of (coefficient, primitive) pairs; :func:`decay` and :func:`self_` read no activity.
With ``with_loss=False`` the loss is not computed (``None``): training needs only the gradient.
Nothing here copies to the host: losses are 0-d arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..layers.conv import Conv2D, conv2d, conv2d_transpose, conv2d_weight_grad
from ..layers.dense import Dense
from ..layers.local import LocalConv2D, local_forward, local_transpose, local_weight_grad

Array = Any


class DenseMaps:
    """A dense layer's maps on a batch of rows (``x`` is ``(N, n)``, ``r`` and ``s`` are ``(N, m)``)."""

    def __init__(self, W: Array, b: Array | None = None) -> None:
        self.W, self.b = W, b

    def forward(self, x: Array, bias: bool = False) -> Array:
        """``r = W x`` (``+ b`` with ``bias``)."""
        r = x @ self.W.T
        return r + self.b if bias and self.b is not None else r

    def backward(self, x: Array, B: Array) -> Array:
        """``s = Bᵀ x``."""
        return x @ B

    def reconstruct(self, r: Array, B: Array) -> Array:
        """``B r``, back in the input's space."""
        return r @ B.T

    def reconstruct_forward(self, s: Array) -> Array:
        """``Wᵀ s``, back in the input's space."""
        return s @ self.W

    def correlate(self, a: Array, b: Array) -> Array:
        """``Σ a bᵀ`` over the batch, in ``B``'s layout (``a`` in the input's space, ``b`` in the output's)."""
        return a.T @ b

    def patches(self, r: Array) -> int:
        """How many samples ``E`` averages over: the batch."""
        return r.shape[0]

    def weight_as_feedback(self) -> Array:
        """``Wᵀ``: ``W`` in ``B``'s layout, so that ``tr(B W) = Σ B ⊙ Wᵀ``."""
        return self.W.T


class ConvMaps(DenseMaps):
    """A convolution's maps on a batch of images ``x`` of shape ``x_shape``, with the layer's
    ``stride`` and ``padding`` (mirror mode uses none, as :meth:`Conv2D.mirror_forward` does)."""

    def __init__(self, W: Array, b: Array | None, stride: int, padding: int, x_shape: tuple[int, ...]) -> None:
        super().__init__(W, b)
        self.stride, self.padding, self.x_shape = stride, padding, tuple(x_shape)

    def forward(self, x: Array, bias: bool = False) -> Array:
        r = conv2d(x, self.W, self.stride, self.padding)  # W ⋆ x
        return r + self.b[:, None, None] if bias and self.b is not None else r

    def backward(self, x: Array, B: Array) -> Array:
        return conv2d(x, B, self.stride, self.padding)  # the convolution of x with the kernel B

    def reconstruct(self, r: Array, B: Array) -> Array:
        return conv2d_transpose(r, B, self.x_shape, self.stride, self.padding)  # convᵀ(r, B), as in eq (3)

    def reconstruct_forward(self, s: Array) -> Array:
        return conv2d_transpose(s, self.W, self.x_shape, self.stride, self.padding)

    def correlate(self, a: Array, b: Array) -> Array:
        return conv2d_weight_grad(a, b, self.W.shape, self.stride, self.padding)  # Σ over every patch

    def patches(self, r: Array) -> int:
        return r.shape[0] * r.shape[2] * r.shape[3]  # batch × output positions

    def weight_as_feedback(self) -> Array:
        return self.W  # a conv B has W's kernel layout


class LocalMaps(ConvMaps):
    """A locally connected layer's maps: a convolution's, each position through its own kernel.
    Each position's ``B`` is a dense layer's of its own, so ``E`` averages over the batch only."""

    def forward(self, x: Array, bias: bool = False) -> Array:
        r = local_forward(x, self.W, self.stride, self.padding)  # W[p] ⋅ patch, each position p
        return r + self.b if bias and self.b is not None else r

    def backward(self, x: Array, B: Array) -> Array:
        return local_forward(x, B, self.stride, self.padding)  # Bᵀ x, each position through B[p]

    def reconstruct(self, r: Array, B: Array) -> Array:
        return local_transpose(r, B, self.x_shape, self.stride, self.padding)  # B r, as in eq (3)

    def reconstruct_forward(self, s: Array) -> Array:
        return local_transpose(s, self.W, self.x_shape, self.stride, self.padding)

    def correlate(self, a: Array, b: Array) -> Array:
        return local_weight_grad(a, b, self.W.shape, self.stride, self.padding)  # Σ over the batch, per position

    def patches(self, r: Array) -> int:
        return r.shape[0]  # the batch: no position shares another's B


def layer_maps(layer: Dense | Conv2D | LocalConv2D, x_shape: tuple[int, ...], padding: int | None = None) -> DenseMaps:
    """The maps of ``layer`` (its ``W`` and ``b`` as they are now) for inputs of shape ``x_shape``;
    ``padding`` overrides a convolution's own (mirror mode: 0)."""
    if isinstance(layer, LocalConv2D):
        pad = layer.padding if padding is None else padding
        return LocalMaps(layer.W, layer.b, layer.stride, pad, x_shape)
    if isinstance(layer, Conv2D):
        pad = layer.padding if padding is None else padding
        return ConvMaps(layer.W, layer.b, layer.stride, pad, x_shape)
    if isinstance(layer, Dense):
        return DenseMaps(layer.W, layer.b)
    raise TypeError(
        f"the alignment primitives know dense and convolutional layers (shared or locally connected), "
        f"not {type(layer).__name__}"
    )


def _sum_squares(a: Array) -> Array:
    return (a * a).sum()


# Each primitive: (maps, B, x, r) -> (loss, ∇_B loss). x is the layer's input (activity or noise),
# r its forward projection W x (or φ(W x)); both unused by decay and self.


def decay(maps: DenseMaps, B: Array, x: Array, r: Array, *, with_loss: bool = True) -> tuple[Array | None, Array]:
    """Decay (Kunin et al. 2020, Table 1): ``‖B‖²``; ``∇_B = 2 B``. (Their code adds ``‖W‖²``,
    a constant for ``B``.)"""
    return (_sum_squares(B) if with_loss else None), 2 * B


def sparse(maps: DenseMaps, B: Array, x: Array, r: Array, *, with_loss: bool = True) -> tuple[Array | None, Array]:
    """Sparse (Kunin et al. 2020, Table 1): ``E‖r‖² + E‖s‖²`` with ``s = Bᵀ x``; ``∇_B = 2 E[x sᵀ]``
    (``E‖r‖²`` does not depend on ``B``)."""
    n = maps.patches(r)
    s = maps.backward(x, B)
    loss = (_sum_squares(r) + _sum_squares(s)) / n if with_loss else None
    return loss, maps.correlate(x, s) * (2 / n)


def null(maps: DenseMaps, B: Array, x: Array, r: Array, *, with_loss: bool = True) -> tuple[Array | None, Array]:
    """Null (Kunin et al. 2020, Table 1): ``E‖B r‖²``, i.e. ``E‖B W x‖²``: what ``B`` sends back of the
    forward projection; ``∇_B = 2 E[(B r) rᵀ]``."""
    n = maps.patches(r)
    u = maps.reconstruct(r, B)  # B r
    loss = _sum_squares(u) / n if with_loss else None
    return loss, maps.correlate(u, r) * (2 / n)


def null_reversed(
    maps: DenseMaps, B: Array, x: Array, r: Array, *, with_loss: bool = True
) -> tuple[Array | None, Array]:
    """Null, reversed (Kunin et al. 2020's code, ``reconstruction_reversal``): ``E‖Wᵀ Bᵀ x‖²``;
    ``∇_B = 2 E[x (W Wᵀ s)ᵀ]`` with ``s = Bᵀ x``."""
    n = maps.patches(r)
    v = maps.reconstruct_forward(maps.backward(x, B))  # Wᵀ s
    loss = _sum_squares(v) / n if with_loss else None
    return loss, maps.correlate(x, maps.forward(v)) * (2 / n)  # W v: the adjoint of Wᵀ, no bias


def self_(maps: DenseMaps, B: Array, x: Array, r: Array, *, with_loss: bool = True) -> tuple[Array | None, Array]:
    """Self (Kunin et al. 2020, Table 1): ``−tr(B W)``; ``∇_B = −Wᵀ``. It reads ``W`` itself.
    (Named with ``_``: ``self`` is Python's name for an instance.)"""
    WT = maps.weight_as_feedback()
    return (-(B * WT).sum() if with_loss else None), -WT


def amp(maps: DenseMaps, B: Array, x: Array, r: Array, *, with_loss: bool = True) -> tuple[Array | None, Array]:
    """Amp (Kunin et al. 2020, Table 1): ``−E[sᵀ r] = −E[xᵀ B W x]``; ``∇_B = −E[x rᵀ]``, the weight
    mirror's Hebbian term (Akrout et al. eq 7, with ``y_l = x`` and ``y_{l+1} = r``)."""
    n = maps.patches(r)
    loss = -(maps.backward(x, B) * r).sum() / n if with_loss else None
    return loss, maps.correlate(x, r) * (-1 / n)


Primitive = Callable[..., tuple[Array | None, Array]]

#: every primitive by name
PRIMITIVES: dict[str, Primitive] = {
    "decay": decay,
    "sparse": sparse,
    "null": null,
    "null_reversed": null_reversed,
    "self": self_,
    "amp": amp,
}

#: the primitives that read only ``B`` and ``W``, no activity
WEIGHT_ONLY: frozenset[Primitive] = frozenset({decay, self_})
