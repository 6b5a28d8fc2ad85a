"""Augmentation of in-memory image datasets, as published CIFAR recipes train (He et al. 2016):
each training image is zero-padded by 4 pixels on every side and a random crop of its original
size taken, then flipped left to right half the time. Evaluation never sees it.

The crop offsets and flips of an epoch are drawn at once from ``(seed, epoch)`` for every index
of the training set, so an image's augmentation depends only on the seed, the epoch and its
index: not on the batch size, nor on where a resumed run starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropFlip:
    """A random crop of the image zero-padded by ``pad`` pixels, and a horizontal flip with
    probability ½."""

    pad: int = 4

    def draws(self, n: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Every training index's ``(row, column)`` crop offset in ``[0, 2·pad]`` and flip, for one epoch."""
        rng = np.random.default_rng([int(seed), 4, int(epoch)])  # stream 4: augmentation of in-memory sets
        return rng.integers(0, 2 * self.pad + 1, size=(n, 2)), rng.random(n) < 0.5

    def __call__(self, x: np.ndarray, idx: np.ndarray, n: int, seed: int, epoch: int) -> np.ndarray:
        """The batch ``x`` of training images (N, C, H, W) whose indices are ``idx``, augmented."""
        offsets, flips = self.draws(n, seed, epoch)
        p = self.pad
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        h, w = x.shape[2], x.shape[3]
        out = np.empty_like(x)
        for k, i in enumerate(idx):
            r, c = offsets[i]
            crop = padded[k, :, r : r + h, c : c + w]
            out[k] = crop[:, :, ::-1] if flips[i] else crop
        return out
