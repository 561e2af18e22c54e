"""Tests for scribbles.graphcut: PyMaxflow graph cut with a contrast-sensitive Potts term."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scribbles import ScribbleError, estimate_sigma, graph_cut, neighbour_offsets


def _edges(image, lamda, sigma, spacing, offsets):
    """Reference edge list (i, j, weight) of the contrast-sensitive Potts term, built naively."""
    edges = []
    for p in itertools.product(*(range(n) for n in image.shape)):
        for off in offsets:
            q = tuple(a + o for a, o in zip(p, off, strict=True))
            if all(0 <= c < n for c, n in zip(q, image.shape, strict=True)):
                dist = np.linalg.norm(np.multiply(off, spacing))
                w = lamda * np.exp(-((image[p] - image[q]) ** 2) / (2 * sigma**2)) / dist
                edges.append((np.ravel_multi_index(p, image.shape), np.ravel_multi_index(q, image.shape), w))
    i, j, w = (np.array(v) for v in zip(*edges, strict=True))
    return i, j, w


def _energies(unary, labels, edges):
    """Energies of a batch of flattened labellings, shape (batch, N)."""
    i, j, w = edges
    flat = unary.reshape(2, -1)
    data = np.where(labels == 1, flat[1], flat[0]).sum(axis=1)
    return data + ((labels[:, i] != labels[:, j]) * w).sum(axis=1)


@pytest.mark.parametrize(
    ("shape", "connectivity", "spacing"),
    [
        ((3, 4), 4, (1.0, 1.0)),
        ((3, 4), 8, (1.0, 2.5)),
        ((2, 2, 3), 6, (3.0, 1.0, 0.5)),
        ((2, 2, 3), 26, (2.0, 1.0, 1.0)),
    ],
)
def test_graph_cut_finds_the_brute_force_minimum(shape, connectivity, spacing):
    # Exhaustive search over all 2^N labellings checks weights, distances and edge directions.
    rng = np.random.default_rng(connectivity)
    image = rng.normal(0, 1, shape)
    unary = rng.uniform(0, 2, (2, *shape))
    lamda, sigma = 1.5, 0.8
    edges = _edges(image, lamda, sigma, spacing, neighbour_offsets(len(shape), connectivity))
    everything = np.array(list(itertools.product((0, 1), repeat=image.size)))
    best = _energies(unary, everything, edges).min()
    labels = graph_cut(image, unary, lamda=lamda, sigma=sigma, spacing=spacing, connectivity=connectivity)
    assert labels.dtype == np.uint8 and labels.shape == shape
    assert _energies(unary, labels.reshape(1, -1), edges)[0] == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize(
    ("shape", "connectivity"), [((40, 50), 4), ((40, 50), 8), ((12, 14, 16), 6), ((12, 14, 16), 26)]
)
def test_lambda_zero_is_argmin_of_unary(shape, connectivity):
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, shape)
    unary = rng.uniform(0, 5, (2, *shape)).astype(np.float32)
    labels = graph_cut(image, unary, lamda=0.0, connectivity=connectivity)
    np.testing.assert_array_equal(labels, np.argmin(unary, axis=0).astype(np.uint8))
    assert 0.3 < labels.mean() < 0.7  # both labels actually occur


@pytest.mark.parametrize("shape", [(64, 64), (24, 24, 24)])
def test_higher_lambda_removes_isolated_noise(shape):
    rng = np.random.default_rng(5)
    truth = np.zeros(shape, bool)
    truth[tuple(slice(n // 4, 3 * n // 4) for n in shape)] = True
    flipped = rng.random(shape) < 0.03  # isolated wrong voxels in the unary
    noisy = truth ^ flipped
    unary = np.stack([np.where(noisy, 1.0, 0.2), np.where(noisy, 0.2, 1.0)])
    image = np.zeros(shape)  # flat image: pure Potts smoothing
    weak = graph_cut(image, unary, lamda=0.0)
    strong = graph_cut(image, unary, lamda=1.0)
    np.testing.assert_array_equal(weak, noisy)
    assert _isolated(weak) > 0.5 * flipped.sum()
    assert _isolated(strong) == 0
    assert (strong != truth).sum() <= 0.05 * (weak != truth).sum()


def _isolated(labels):
    """Number of voxels whose face neighbours (inside the grid) all carry the other label."""
    padded = np.pad(labels.astype(int), 1, mode="edge")
    core = tuple(slice(1, -1) for _ in labels.shape)
    same = np.zeros(labels.shape, int)
    for axis in range(labels.ndim):
        for step in (-1, 1):
            same += np.roll(padded, step, axis=axis)[core] == labels
    return int((same == 0).sum())


def test_contrast_lets_the_boundary_follow_an_image_edge():
    # Unary says "foreground" for columns < 20, the image edge is at column 26: with a
    # strong smoothness the cut moves to the cheap high-contrast edge.
    image = np.zeros((30, 40))
    image[:, 26:] = 10.0
    fg_cols = 20
    unary = np.zeros((2, 30, 40))
    unary[0, :, :fg_cols] = 0.1
    unary[1, :, fg_cols:] = 0.1
    unary[:, :, 0] = [[10.0], [0.0]]  # strong evidence at the far ends
    unary[:, :, -1] = [[0.0], [10.0]]
    labels = graph_cut(image, unary, lamda=5.0, sigma=1.0)
    assert labels[:, :26].all() and not labels[:, 26:].any()
    without_edge = graph_cut(np.zeros_like(image), unary, lamda=5.0, sigma=1.0)
    assert not np.array_equal(without_edge, labels)


def test_seeds_are_hard_constraints():
    shape = (20, 20)
    unary = np.stack([np.zeros(shape), np.full(shape, 3.0)])  # everything prefers background
    fg = np.zeros(shape, bool)
    fg[10, 10] = True
    image = np.zeros(shape)
    assert graph_cut(image, unary, lamda=50.0, connectivity=8)[10, 10] == 0
    assert graph_cut(image, unary, lamda=50.0, connectivity=8, fg_seeds=fg)[10, 10] == 1
    bg = np.zeros(shape, bool)
    bg[0, 0] = True
    flipped = graph_cut(image, unary[::-1], lamda=50.0, bg_seeds=bg)
    assert flipped[0, 0] == 0 and flipped.sum() == 399


@pytest.mark.parametrize(("ndim", "connectivity", "count"), [(2, 4, 2), (2, 8, 4), (3, 6, 3), (3, 18, 9), (3, 26, 13)])
def test_neighbour_offsets_counts(ndim, connectivity, count):
    offsets = neighbour_offsets(ndim, connectivity)
    assert len(offsets) == count == len(set(offsets))
    negatives = {tuple(-o for o in off) for off in offsets}
    assert not negatives & set(offsets)  # one offset per undirected edge


def test_estimate_sigma_scales_with_intensity_units():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (30, 30))
    assert estimate_sigma(1000.0 * image) == pytest.approx(1000.0 * estimate_sigma(image))
    assert estimate_sigma(np.zeros((5, 5))) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"unary": np.zeros((2, 5, 6))}, "shape"),
        ({"unary": np.zeros((3, 5, 5))}, "shape"),
        ({"connectivity": 6}, "connectivity"),
        ({"lamda": -1.0}, "lamda"),
        ({"sigma": 0.0}, "sigma"),
        ({"spacing": (1.0, 0.0)}, "spacing"),
        ({"spacing": (1.0, 1.0, 1.0)}, "spacing"),
        ({"fg_seeds": np.ones((5, 5), bool), "bg_seeds": np.ones((5, 5), bool)}, "overlap"),
        ({"image": np.zeros((5,))}, "2D or 3D"),
    ],
)
def test_graph_cut_errors(kwargs, word):
    args = {"image": np.zeros((5, 5)), "unary": np.zeros((2, 5, 5)), **kwargs}
    with pytest.raises(ScribbleError, match=word):
        graph_cut(**args)
