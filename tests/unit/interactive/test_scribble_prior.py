"""The prior in a box as two classes (structure against its strongest rival): what the refinement reads."""

import numpy as np
import torch

from medlabel.continual.store import ModelStore
from medlabel.interactive.volume import Volume
from medlabel.kinds.scribbles.prior import probabilities_in_box
from medlabel.kinds.scribbles.refinement import structure_probability
from medlabel.kinds.segmentation.predictor import Predictor
from medlabel.spec import ModelSpec, NetworkSpec, ZScore


def test_two_class_prior_is_the_structure_against_its_rival(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(name="organ3", labels={"organ": 1, "other": 2}, spacing_mm=(2.0, 2.0, 2.0), roi_size=(16, 16, 16),
                     intensity=ZScore(), network=NetworkSpec(channels=(4, 8)))
    predictor = Predictor(ModelStore(tmp_path, spec))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # the model's spacing
    volume = Volume(np.random.default_rng(0).normal(size=(40, 36, 20)).astype(np.float32), affine)
    box = (slice(5, 30), slice(4, 28), slice(3, 15))
    full = probabilities_in_box(predictor, volume, box, 0.0, torch.device("cpu"), 0.0)
    two = probabilities_in_box(predictor, volume, box, 0.0, torch.device("cpu"), 0.0, structure=1)
    assert two.shape == (2, 25, 24, 12) and np.allclose(two.sum(0), 1.0)
    assert np.allclose(structure_probability(two, 1), two[1], atol=1e-5)  # the refinement reads it unchanged
    # the same ratio, only computed before resampling (the pre-processing still resamples by a voxel's fraction)
    same = np.abs(two[1] - structure_probability(full, 1)).mean()
    other = np.abs(two[1] - structure_probability(full, 2)).mean()
    assert same < 0.02 and other > 5 * same  # and of the structure asked for
