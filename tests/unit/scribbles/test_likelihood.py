"""Tests for scribbles.likelihood: histogram and GMM foreground probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from scribbles import ScribbleError, gmm_likelihood, histogram_likelihood

METHODS = {"histogram": histogram_likelihood, "gmm": gmm_likelihood}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_likelihood_separates_disc_from_background(name, make_disc):
    scene = make_disc(noise=0.3)
    p = METHODS[name](scene.image, scene.fg, scene.bg)
    assert p.dtype == np.float32
    assert p.shape == scene.image.shape
    assert p.min() >= 0.0 and p.max() <= 1.0
    assert p[scene.truth].mean() > 0.75
    assert p[~scene.truth].mean() < 0.25


@pytest.mark.parametrize("name", sorted(METHODS))
def test_likelihood_works_in_3d(name, make_sphere):
    scene = make_sphere(noise=0.3)
    p = METHODS[name](scene.image, scene.fg, scene.bg)
    assert p.shape == scene.image.shape
    assert p[scene.truth].mean() - p[~scene.truth].mean() > 0.5


@pytest.mark.parametrize("name", sorted(METHODS))
def test_roi_evaluation_equals_crop_of_full_map(name, make_sphere):
    scene = make_sphere(noise=0.5)
    roi = (slice(10, 30), slice(5, 40), slice(0, 48))
    full = METHODS[name](scene.image, scene.fg, scene.bg)
    cropped = METHODS[name](scene.image, scene.fg, scene.bg, roi=roi)
    assert cropped.shape == (20, 35, 48)
    np.testing.assert_allclose(cropped, full[roi], atol=1e-6)


@pytest.mark.parametrize(
    ("name", "kwargs"), [("histogram", {}), ("gmm", {"n_components": 2})]
)
def test_multimodal_foreground(name, kwargs):
    # Foreground scribbles cover intensities 0 and 2, background scribbles 1: a single
    # threshold cannot separate them, a per-class model can.
    rng = np.random.default_rng(1)
    image = rng.choice([0.0, 1.0, 2.0], size=(64, 64)) + rng.normal(0, 0.05, (64, 64))
    fg = np.abs(np.round(image) - 1) == 1
    bg = ~fg
    fg[32:, :] = False  # scribble only the top half
    bg[32:, :] = False
    p = METHODS[name](image, fg, bg, **kwargs)
    lower_fg = np.abs(np.round(image[32:]) - 1) == 1
    accuracy = np.mean((p[32:] > 0.5) == lower_fg)
    assert accuracy > 0.99
    assert np.median(p[32:][lower_fg]) > 0.9
    assert np.median(p[32:][~lower_fg]) < 0.1


def test_histogram_laplace_smoothing_avoids_hard_zero():
    image = np.linspace(0.0, 1.0, 100, dtype=np.float32).reshape(10, 10)
    fg = image > 0.9
    bg = image < 0.1
    middle = (image > 0.4) & (image < 0.6)  # scribbled by neither class
    smoothed = histogram_likelihood(image, fg, bg, bins=10, smoothing=1.0)
    np.testing.assert_allclose(smoothed[middle], 0.5, atol=1e-6)
    raw = histogram_likelihood(image, fg, bg, bins=10, smoothing=0.0)
    assert raw[bg].max() == 0.0 and raw[fg].min() == 1.0
    assert smoothed[bg].max() > 0.0 and smoothed[fg].min() < 1.0


def test_gmm_with_fewer_distinct_values_than_components():
    image = np.zeros((20, 20), dtype=np.float32)
    image[10:] = 1.0
    fg = np.zeros_like(image, dtype=bool)
    fg[15, 5] = True  # a single voxel
    bg = np.zeros_like(fg)
    bg[2, 2:6] = True
    p = gmm_likelihood(image, fg, bg, n_components=5)
    assert p[10:].min() > 0.5 > p[:10].max()


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize(
    ("mutate", "word"),
    [
        (lambda img, fg, bg: (img, np.zeros_like(fg), bg), "foreground"),
        (lambda img, fg, bg: (img, fg, np.zeros_like(bg)), "background"),
        (lambda img, fg, bg: (img, fg[:-1], bg), "shape"),
        (lambda img, fg, bg: (img, fg, bg[:, :-1]), "shape"),
        (lambda img, fg, bg: (img, fg, fg), "overlap"),
    ],
)
def test_likelihood_errors_name_the_problem(name, mutate, word, make_disc):
    scene = make_disc()
    args = mutate(scene.image, scene.fg, scene.bg)
    with pytest.raises(ScribbleError, match=word):
        METHODS[name](*args)


def test_scribble_error_is_value_error():
    assert issubclass(ScribbleError, ValueError)


def test_bad_roi_is_rejected(make_disc):
    scene = make_disc()
    with pytest.raises(ScribbleError, match="roi"):
        histogram_likelihood(scene.image, scene.fg, scene.bg, roi=(slice(0, 5),))
