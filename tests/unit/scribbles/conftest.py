"""Synthetic images with known answers for the scribbles unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest


class Scene(NamedTuple):
    """A noisy image, its true foreground and a few scribble strokes."""

    image: np.ndarray
    truth: np.ndarray
    fg: np.ndarray
    bg: np.ndarray


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _disc(noise: float = 0.8, seed: int = 0, size: int = 96) -> Scene:
    """Bright disc (radius 25, intensity 1) on a dark background (0) plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    truth = (yy - c) ** 2 + (xx - c) ** 2 < 25**2
    image = truth.astype(np.float32) + rng.normal(0.0, noise, truth.shape).astype(np.float32)
    fg = np.zeros_like(truth)
    fg[c - 2 : c + 2, c - 13 : c + 14] = True  # horizontal stroke through the centre
    bg = np.zeros_like(truth)
    bg[5:9, 10:86] = True  # strokes along three sides
    bg[85:89, 10:86] = True
    bg[10:86, 5:9] = True
    return Scene(image, truth, fg, bg)


def _sphere(noise: float = 0.6, seed: int = 0, size: int = 48) -> Scene:
    """Bright sphere (radius 12) in a dark cube plus Gaussian noise, with 3D strokes."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:size, :size, :size]
    c = size // 2
    truth = (zz - c) ** 2 + (yy - c) ** 2 + (xx - c) ** 2 < 12**2
    image = truth.astype(np.float32) + rng.normal(0.0, noise, truth.shape).astype(np.float32)
    fg = np.zeros_like(truth)
    fg[c - 2 : c + 2, c, c - 8 : c + 9] = True
    fg[c, c - 8 : c + 9, c - 2 : c + 2] = True
    bg = np.zeros_like(truth)
    bg[4:44, 4, 4:44] = True  # three background "planes" of strokes
    bg[4:44, 43, 4:44] = True
    bg[4, 4:44, 4:44] = True
    return Scene(image, truth, fg, bg)


@pytest.fixture
def dice() -> Callable[[np.ndarray, np.ndarray], float]:
    """Dice overlap of two binary arrays."""
    return _dice


@pytest.fixture
def make_disc() -> Callable[..., Scene]:
    """Factory for the 2D disc scene."""
    return _disc


@pytest.fixture
def make_sphere() -> Callable[..., Scene]:
    """Factory for the 3D sphere scene."""
    return _sphere
