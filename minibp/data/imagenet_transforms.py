"""The ImageNet loader's per-image work: decoding with Pillow, the augmentation crops, normalisation.

This is what the worker processes run, so it is kept apart from the folder dataset
(:mod:`minibp.data.imagenet`) and from the pool (:mod:`minibp.data.workers`): :func:`fill_batch`
is the ``fill`` function the pool gives its workers, a worker imports this module by qualified
name, and the module needs nothing of the dataset or the pool (only the worker's
:class:`~minibp.data.worker_process._Cancelled`, raised when a batch is no longer wanted).

Training images get the Inception-style random resized crop (scale 0.08-1, aspect ratio 3/4-4/3,
:func:`random_resized_crop`) and a horizontal flip with probability 1/2; test images and the probe
get the shorter side resized to ``round(image_size / 0.875)`` and a center crop
(:func:`center_box`). JPEGs are decoded at 1/2, 1/4 or 1/8 size by libjpeg when the crop allows
it. Pixels are normalised with the ImageNet channel mean and standard deviation (:data:`MEAN`,
:data:`STD`) into ``(3, S, S)`` float arrays.

Determinism: sample ``i`` of epoch ``e`` is augmented from
``np.random.default_rng([seed, AUGMENT_STREAM, e, i])``, so an image's crop and flip depend only
on the run's seed, the epoch and the image, not on which worker decodes it or when.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .worker_process import _Cancelled

__all__ = ["MEAN", "STD", "ImageDecodeError", "center_box", "fill_batch", "load_image", "random_resized_crop"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EVAL_CROP_FRACTION = 0.875  # test images: shorter side to image_size / 0.875, then a center crop
CROP_SCALE = (0.08, 1.0)  # random resized crop: fraction of the image's area
CROP_RATIO = (3 / 4, 4 / 3)  # ... and aspect ratio (width / height), drawn log-uniformly
CROP_TRIES = 10
AUGMENT_STREAM = 3  # default_rng([seed, AUGMENT_STREAM, epoch, i]); stream 2 is epoch_order's


class ImageDecodeError(RuntimeError):
    """An image could not be read or decoded; the message names the file."""


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("the ImageNet loader decodes images with Pillow: pip install pillow") from err
    return Image


def random_resized_crop(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random ``(left, top, right, bottom)`` box: 8-100 % of the area, aspect ratio 3/4-4/3.

    Up to :data:`CROP_TRIES` draws; if none fits inside the image, the largest centered box whose
    aspect ratio is within the range.
    """
    area = width * height
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(CROP_TRIES):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    w, h = width, height
    if width / height < CROP_RATIO[0]:
        h = min(height, round(width / CROP_RATIO[0]))
    elif width / height > CROP_RATIO[1]:
        w = min(width, round(height * CROP_RATIO[1]))
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def center_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The box that, resized to ``size``², equals resizing the shorter side to ``size / 0.875`` and center-cropping."""
    side = size * min(width, height) / round(size / EVAL_CROP_FRACTION)
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


_SCALE = (1.0 / (255.0 * np.array(STD))).astype(np.float32)[:, None, None]
_SHIFT = (255.0 * np.array(MEAN)).astype(np.float32)[:, None, None]


def load_image(path: str, size: int, rng: np.random.Generator | None, out: np.ndarray) -> None:
    """Decode ``path`` into ``out`` (3, size, size): augmented from ``rng``, or the test transform if None."""
    image_mod = _pil()
    with image_mod.open(path) as im:
        width, height = im.size
        box: tuple[float, ...] = (
            random_resized_crop(width, height, rng) if rng is not None else center_box(width, height, size)
        )
        if im.format == "JPEG":  # let libjpeg decode at 1/2, 1/4 or 1/8 size when the crop allows it
            need = (
                math.ceil(width * size / (box[2] - box[0])),
                math.ceil(height * size / (box[3] - box[1])),
            )
            drafted = im.draft("RGB", need)
            if drafted is not None:
                shrink = drafted[1][2] / width
                box = tuple(c * shrink for c in box)
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        pixels = np.asarray(rgb.resize((size, size), image_mod.Resampling.BILINEAR, box=box))
    if rng is not None and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    np.subtract(pixels.transpose(2, 0, 1), _SHIFT, out=out, casting="unsafe")
    np.multiply(out, _SCALE, out=out, casting="unsafe")


@dataclass(frozen=True)
class _Augment:
    """Training augmentation of a batch: the samples' dataset indices and the run's seed and epoch."""

    seed: int
    epoch: int
    indices: tuple[int, ...]


def fill_batch(out: np.ndarray, paths: list[str], augment: _Augment | None, stop: Any = None) -> None:
    """Decode ``paths`` into ``out[:len(paths)]``; ``stop()`` (if given) is asked between images."""
    size = out.shape[-1]
    for k, path in enumerate(paths):
        if stop is not None and stop():
            raise _Cancelled
        rng = None
        if augment is not None:
            rng = np.random.default_rng([augment.seed, AUGMENT_STREAM, augment.epoch, augment.indices[k]])
        try:
            load_image(path, size, rng, out[k])
        except Exception as err:
            raise ImageDecodeError(f"cannot decode image {path}: {type(err).__name__}: {err}") from err
