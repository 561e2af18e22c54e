"""Tests for scribbles.refine: the end-to-end scribble refinement."""

from __future__ import annotations


import numpy as np
import pytest

from scribbles import (
    SCRIBBLES_BG_LABEL,
    SCRIBBLES_FG_LABEL,
    ScribbleError,
    gmm_likelihood,
    histogram_likelihood,
    refine,
    scribble_roi,
    scribbles_from_label,
)

LIKELIHOODS = {"histogram": histogram_likelihood, "gmm": gmm_likelihood}


@pytest.mark.parametrize("method", sorted(LIKELIHOODS))
def test_refine_2d_noisy_disc_beats_thresholding(method, make_disc, dice):
    scene = make_disc(noise=0.8)
    label = refine(scene.image, scene.fg, scene.bg, method=method)
    assert label.dtype == np.uint8 and label.shape == scene.image.shape
    assert set(np.unique(label)) <= {0, 1}
    thresholded = LIKELIHOODS[method](scene.image, scene.fg, scene.bg) > 0.5
    assert dice(label, scene.truth) > 0.9
    assert dice(label, scene.truth) > dice(thresholded, scene.truth) + 0.2


@pytest.mark.parametrize("method", sorted(LIKELIHOODS))
def test_refine_3d_noisy_sphere_beats_thresholding(method, make_sphere, dice):
    scene = make_sphere(noise=0.6)
    label = refine(scene.image, scene.fg, scene.bg, method=method, spacing=(1.0, 1.0, 1.0))
    thresholded = LIKELIHOODS[method](scene.image, scene.fg, scene.bg) > 0.5
    assert dice(label, scene.truth) > 0.9
    assert dice(label, scene.truth) > dice(thresholded, scene.truth) + 0.2


def test_refine_keeps_scribbles_as_hard_constraints(make_disc):
    # A lone foreground dot in the background and a background dot inside the disc: a
    # strong smoothness would erase both, but scribbles are hard constraints.
    scene = make_disc(noise=0.3)
    fg, bg = scene.fg.copy(), scene.bg.copy()
    fg[20, 48] = True
    bg[60, 48] = True
    label = refine(scene.image, fg, bg, lamda=30.0)
    assert label[fg].all() and not label[bg].any()
    assert label[19:22, 47:50].sum() == 1 and label[59:62, 47:50].sum() == 8


def test_lambda_zero_refine_equals_thresholded_likelihood_plus_scribbles(make_disc):
    scene = make_disc(noise=0.8)
    label = refine(scene.image, scene.fg, scene.bg, method="histogram", lamda=0.0)
    expected = histogram_likelihood(scene.image, scene.fg, scene.bg) > 0.5
    expected[scene.fg], expected[scene.bg] = True, False
    np.testing.assert_array_equal(label, expected)


def _ball_in_volume(shape, centre, radius, noise, seed=0):
    """Noisy ball in a larger volume with strokes inside it and on four sides around it."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    truth = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) < radius**2
    rng = np.random.default_rng(seed)
    image = truth.astype(np.float32) + rng.normal(0.0, noise, shape).astype(np.float32)
    z, y, x = centre
    r = radius
    fg = np.zeros(shape, bool)
    fg[z, y - r // 2 : y + r // 2, x] = True
    bg = np.zeros(shape, bool)
    bg[z, y - 2 * r : y + 2 * r, x - r - 5] = True
    bg[z, y - 2 * r : y + 2 * r, x + r + 5] = True
    bg[z - r - 5, y, x - r : x + r] = True
    bg[z + r + 5, y, x - r : x + r] = True
    return image, truth, fg, bg


@pytest.mark.parametrize("method", sorted(LIKELIHOODS))
def test_roi_gives_same_answer_when_object_inside(method, dice):
    shape, centre, radius = (80, 96, 64), (40, 50, 30), 10
    image, truth, fg, bg = _ball_in_volume(shape, centre, radius, noise=0.2)
    box = scribble_roi(fg, bg, margin=6)
    assert np.prod([s.stop - s.start for s in box]) < 0.5 * image.size  # the ROI really is smaller
    assert truth[box].sum() == truth.sum()  # ... and holds the whole object
    # sigma is fixed: estimated from the ROI it would differ from the full-image estimate.
    full = refine(image, fg, bg, method=method, sigma=0.5)
    auto = refine(image, fg, bg, method=method, sigma=0.5, roi="auto", margin=6)
    explicit = refine(image, fg, bg, method=method, sigma=0.5, roi=box)
    np.testing.assert_array_equal(explicit, auto)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    near = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) < (radius + 3) ** 2
    np.testing.assert_array_equal(auto[near], full[near])  # identical object
    assert (auto != full).sum() < 1e-3 * image.size  # elsewhere only stray noise voxels differ
    assert dice(auto, truth) >= dice(full, truth) > 0.9


def test_outside_roi_is_prior_or_zero():
    image, truth, fg, bg = _ball_in_volume((64, 64, 64), (20, 32, 32), 6, noise=0.3)
    box = scribble_roi(fg, bg, margin=2)
    prob = np.zeros(image.shape, np.float32)
    prob[50:60, 5:15, 5:15] = 0.9  # prior object far from the scribbles
    prob[truth] = 0.7
    outside = np.ones(image.shape, bool)
    outside[box] = False
    assert outside[50:60, 5:15, 5:15].all()
    with_prior = refine(image, fg, bg, prob=prob, roi="auto", margin=2)
    np.testing.assert_array_equal(with_prior[outside], (prob > 0.5)[outside])
    assert with_prior[50:60, 5:15, 5:15].all()
    without_prior = refine(image, fg, bg, roi="auto", margin=2)
    assert not without_prior[outside].any()
    assert without_prior[box].any()


def test_roi_on_large_volume_works_only_inside_the_scribbles_box(dice):
    """Speed is measured in bench/ (wall-clock limits in tests fail on a busy machine); here: the cut is
    confined to the box around the scribbles, and it still finds the object."""
    from scribbles import scribble_roi

    shape = (256, 256, 128)
    image, truth, fg, bg = _ball_in_volume(shape, (128, 100, 64), 20, noise=0.25)
    box = scribble_roi(fg, bg, 8)
    assert np.prod([s.stop - s.start for s in box]) < 0.1 * np.prod(shape)
    label = refine(image, fg, bg, roi="auto", margin=8)
    outside = np.ones(shape, bool)
    outside[box] = False
    assert label.shape == shape and not label[outside].any()
    assert dice(label, truth) > 0.9


def test_scribbles_correct_a_wrong_prior(make_disc, dice):
    scene = make_disc(noise=0.4)
    yy, xx = np.mgrid[: scene.image.shape[0], : scene.image.shape[1]]
    shifted = (yy - 48) ** 2 + (xx - 58) ** 2 < 25**2  # model output shifted right by 10
    prob = np.where(shifted, 0.9, 0.1).astype(np.float32)
    fg = np.zeros_like(scene.fg)
    fg[40:56, 27:30] = True  # missed left crescent
    bg = np.zeros_like(scene.bg)
    bg[40:56, 77:80] = True  # false-positive right crescent
    label = refine(scene.image, fg, bg, prob=prob, alpha=0.5)
    assert dice(label, scene.truth) > dice(shifted, scene.truth) + 0.05
    assert dice(label, scene.truth) > 0.9


def test_scribbles_from_label_uses_monailabel_ids():
    assert (SCRIBBLES_BG_LABEL, SCRIBBLES_FG_LABEL) == (2, 3)
    label = np.array([[0, 1, 2], [3, 3, 2]], dtype=np.uint8)
    fg, bg = scribbles_from_label(label)
    np.testing.assert_array_equal(fg, [[False, False, False], [True, True, False]])
    np.testing.assert_array_equal(bg, [[False, False, True], [False, False, True]])
    fg, bg = scribbles_from_label(label[None, None], fg_id=1, bg_id=0)  # channel-first 4D
    assert fg.shape == (1, 2, 3) and fg.sum() == 1 and bg.sum() == 1
    with pytest.raises(ScribbleError, match="differ"):
        scribbles_from_label(label, fg_id=2, bg_id=2)


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"fg_mask": "empty"}, "foreground"),
        ({"bg_mask": "empty"}, "background"),
        ({"fg_mask": "short"}, "shape"),
        ({"image": "short"}, "shape"),
        ({"prob": "short"}, "shape"),
        ({"method": "kmeans"}, "method"),
        ({"roi": "everywhere"}, "roi"),
        ({"roi": (slice(0, 10),)}, "roi"),
        ({"roi": (slice(10, 10), slice(0, 10))}, "empty"),
        ({"lamda": -1.0}, "lamda"),
        ({"roi": "auto", "margin": (1, 2, 3)}, "margin"),
        ({"roi": "auto", "margin": -1}, "margin"),
    ],
)
def test_refine_errors_name_the_problem(change, word, make_disc):
    scene = make_disc()
    args = {"image": scene.image, "fg_mask": scene.fg, "bg_mask": scene.bg, "prob": None}
    for key, value in change.items():
        if value == "empty":
            value = np.zeros_like(args[key])
        elif value == "short":
            value = (scene.image if key == "prob" else args[key])[:-1]
        args[key] = value
    with pytest.raises(ScribbleError, match=word):
        refine(**args)
