"""Uncertainty and diversity scores on hand-made probabilities and embeddings."""

import math

import numpy as np
import pytest
import torch

from medlabel.kinds.classification.strategy import bald_score, entropy_score, farthest_first, margin_score


def test_entropy_is_zero_when_certain_and_one_when_uniform():
    assert entropy_score(torch.tensor([1.0, 0.0, 0.0]), False) == pytest.approx(0.0, abs=1e-5)
    assert entropy_score(torch.tensor([1 / 3] * 3), False) == pytest.approx(1.0)
    assert entropy_score(torch.tensor([0.5, 0.5]), True) == pytest.approx(1.0)
    assert entropy_score(torch.tensor([0.5, 1.0]), True) == pytest.approx(0.5, abs=1e-4)


def test_margin_ranks_close_calls_first():
    assert margin_score(torch.tensor([0.5, 0.3, 0.2]), False) == pytest.approx(0.8)
    assert margin_score(torch.tensor([0.9, 0.1]), False) == pytest.approx(0.2)
    assert margin_score(torch.tensor([0.5, 1.0]), True) == pytest.approx(0.5)


def test_bald_separates_disagreement_from_shared_doubt():
    agree_unsure = torch.tensor([[0.5, 0.5]] * 4)
    disagree = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 2)
    assert bald_score(agree_unsure, False) == pytest.approx(0.0, abs=1e-5)
    assert bald_score(disagree, False) == pytest.approx(1.0, abs=1e-4)
    # multi-label, one class: samples 0.1 and 0.9 -> H(0.5) - H(0.1) in bits
    h = lambda p: -(p * math.log2(p) + (1 - p) * math.log2(1 - p))  # noqa: E731
    assert bald_score(torch.tensor([[0.1], [0.9]]), True) == pytest.approx(1 - h(0.1), abs=1e-4)


def test_coreset_picks_the_candidate_farthest_from_labelled():
    labelled = np.array([[0.0, 0.0], [10.0, 0.0]])
    candidates = np.array([[1.0, 0.0], [5.0, 6.0], [9.0, 1.0]])
    assert farthest_first(candidates, labelled) == (1, pytest.approx(math.hypot(5, 6)))
    # nothing labelled: the one farthest from the candidates' mean
    assert farthest_first(np.array([[0.0], [1.0], [9.0]]), np.zeros((0, 1)))[0] == 2
