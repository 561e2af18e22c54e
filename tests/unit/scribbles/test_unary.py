"""Tests for scribbles.unary: ISeg unary terms."""

from __future__ import annotations

import numpy as np
import pytest

from scribbles import ScribbleError, make_iseg_unary


def _inputs(shape=(8, 9)):
    rng = np.random.default_rng(0)
    prob = rng.uniform(0.05, 0.95, shape).astype(np.float32)
    fg = np.zeros(shape, bool)
    bg = np.zeros(shape, bool)
    fg[1, 1:4] = True
    bg[3, 2:5] = True
    return prob, fg, bg


@pytest.mark.parametrize("shape", [(8, 9), (4, 5, 6)])
def test_unary_is_negative_log_probability_with_hard_scribbles(shape):
    prob, fg, bg = _inputs(shape)
    fg.flat[0] = True
    bg.flat[-1] = True
    eps = 1e-4
    u = make_iseg_unary(prob, fg, bg, eps=eps)
    assert u.shape == (2, *shape) and u.dtype == np.float32
    free = ~(fg | bg)
    np.testing.assert_allclose(u[1][free], -np.log(prob[free]), rtol=1e-5)
    np.testing.assert_allclose(u[0][free], -np.log(1 - prob[free]), rtol=1e-5)
    np.testing.assert_allclose(u[0][fg], -np.log(eps), rtol=1e-4)  # bg label on fg scribble: max cost
    np.testing.assert_allclose(u[1][fg], -np.log1p(-eps), atol=1e-6)
    np.testing.assert_allclose(u[1][bg], -np.log(eps), rtol=1e-4)
    np.testing.assert_allclose(u[0][bg], -np.log1p(-eps), atol=1e-6)


def test_eps_clipping_keeps_costs_finite():
    prob = np.array([[0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    none = np.zeros_like(prob, dtype=bool)
    u = make_iseg_unary(prob, none, none, eps=1e-6)
    assert np.isfinite(u).all()
    assert u.max() == pytest.approx(-np.log(1e-6), rel=1e-3)


def test_alpha_blends_model_and_likelihood():
    prob, fg, bg = _inputs()
    lik = 1.0 - prob
    free = ~(fg | bg)
    only_model = make_iseg_unary(prob, fg, bg, likelihood=lik, alpha=0.0)
    only_lik = make_iseg_unary(prob, fg, bg, likelihood=lik, alpha=1.0)
    half = make_iseg_unary(prob, fg, bg, likelihood=lik, alpha=0.5)
    np.testing.assert_allclose(only_model[1][free], -np.log(prob[free]), rtol=1e-5)
    np.testing.assert_allclose(only_lik[1][free], -np.log(lik[free]), rtol=1e-5)
    np.testing.assert_allclose(half[1][free], -np.log(0.5), rtol=1e-5)
    # scribbles stay hard whatever the blend
    assert (half[1][fg] < 1e-3).all() and (half[0][bg] < 1e-3).all()


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"fg_mask": np.ones((8, 9), bool), "bg_mask": np.ones((8, 9), bool)}, "overlap"),
        ({"fg_mask": np.zeros((8, 8), bool)}, "shape"),
        ({"prob": np.full((8, 9), 1.5, np.float32)}, r"\[0, 1\]"),
        ({"likelihood": np.zeros((9, 8), np.float32)}, "shape"),
        ({"likelihood": np.zeros((8, 9), np.float32), "alpha": 2.0}, "alpha"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_unary_errors(kwargs, word):
    prob, fg, bg = _inputs()
    args = {"prob": prob, "fg_mask": fg, "bg_mask": bg, **kwargs}
    with pytest.raises(ScribbleError, match=word):
        make_iseg_unary(**args)
