"""Clicks as local corrections: geodesic balls that stop at intensity edges, nearer click wins."""

from __future__ import annotations

import numpy as np
import pytest

from scribbles import ScribbleError
from scribbles.clicks import click_correction, geodesic_ball


def two_slabs(noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """40^3 image: x < 20 dark (0), x >= 20 bright (10), plus Gaussian noise."""
    image = np.zeros((40, 40, 40), dtype=np.float32)
    image[20:] = 10.0
    return image + np.random.default_rng(seed).normal(0.0, noise, image.shape).astype(np.float32)


def test_flat_image_gives_a_euclidean_ball():
    image = np.zeros((30, 30, 30), dtype=np.float32)
    box, distance = geodesic_ball(image, (15, 15, 15), (1.0, 1.0, 1.0), 6.0, edge_weight=5.0)
    assert distance[tuple(15 - s.start for s in box)] == 0.0
    reached = np.isfinite(distance)
    # 26-neighbour paths: within sqrt(3)-1 of the true distance, never shorter
    zz = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) - 15 for s in box], indexing="ij"))
    euclid = np.sqrt((zz**2).sum(0))
    assert (distance[reached] >= euclid[reached] - 1e-9).all()
    assert reached[euclid <= 6.0 / 1.1].all() and not reached[euclid > 6.0].any()


def test_anisotropic_spacing_shrinks_the_reach_in_voxels():
    image = np.zeros((30, 30, 30), dtype=np.float32)
    box, distance = geodesic_ball(image, (15, 15, 15), (1.0, 1.0, 3.0), 6.0, edge_weight=0.0)
    assert [s.stop - s.start for s in box] == [13, 13, 5]  # 6 mm: 6 voxels each side in x/y, 2 in z


def test_an_intensity_edge_stops_the_ball_and_zero_edge_weight_does_not():
    image = two_slabs(noise=0.2)
    label = np.zeros(image.shape, np.uint8)
    stopped = click_correction(label, image, [(17, 20, 20)], [], (1.0, 1.0, 1.0), 8.0, edge_weight=1.0)
    assert stopped[15:20, 20, 20].all()  # the dark side near the click
    assert not stopped[20:].any()  # nothing across the edge, 3 mm away
    crossed = click_correction(label, image, [(17, 20, 20)], [], (1.0, 1.0, 1.0), 8.0, edge_weight=0.0)
    assert crossed[20:24, 20, 20].all()


def test_background_click_removes_a_false_region_and_nearer_click_wins():
    image = np.zeros((40, 40, 40), dtype=np.float32)
    label = np.ones(image.shape, np.uint8)
    out = click_correction(label, image, [(20, 20, 14)], [(20, 20, 26)], (1.0, 1.0, 1.0), 8.0)
    assert out[20, 20, 26] == 0 and out[20, 20, 22] == 0 and out[20, 20, 21] == 0  # nearer the background click
    assert out[20, 20, 18] == 1 and out[20, 20, 19] == 1 and out[20, 20, 14] == 1
    assert out[20, 20, 35] == 1  # beyond every click's reach: the network's label


def test_each_click_at_the_interior_of_an_error_helps():
    """The simulated annotator's protocol on a phantom: a sphere the 'network' misses a lobe of."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    zz = np.stack(np.meshgrid(*[np.arange(48)] * 3, indexing="ij"))
    truth = ((zz - 24) ** 2).sum(0) <= 16**2
    image = np.where(truth, 10.0, 0.0) + rng.normal(0, 1.0, truth.shape)
    net = truth & (zz[0] < 30)  # misses the lobe x >= 30
    fg, scores = [], []
    pred = net
    for _ in range(4):
        missed = truth & ~pred
        d = ndimage.distance_transform_edt(missed)
        fg.append(tuple(int(v) for v in np.unravel_index(d.argmax(), d.shape)))
        pred = click_correction(net, image, fg, [], (1.0, 1.0, 1.0), 8.0).astype(bool)
        scores.append(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
    base = 2 * (net & truth).sum() / (net.sum() + truth.sum())
    assert np.all(np.diff([base, *scores]) > 0.005), (base, scores)


def test_bad_input_is_a_scribble_error():
    image = np.zeros((10, 10, 10), dtype=np.float32)
    with pytest.raises(ScribbleError, match="outside"):
        click_correction(np.zeros_like(image), image, [(10, 0, 0)], [], (1, 1, 1), 4.0)
    with pytest.raises(ScribbleError, match="shape"):
        click_correction(np.zeros((9, 10, 10)), image, [(1, 1, 1)], [], (1, 1, 1), 4.0)
    assert (click_correction(np.ones_like(image), image, [(1, 1, 1)], [], (1, 1, 1), 0.0) == 1).all()
