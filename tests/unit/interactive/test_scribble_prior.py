"""The prior in a box as one channel (the structure against its strongest rival): what the refinement reads."""

import os

import numpy as np
import torch
from monai.data import MetaTensor

from medlabel.continual.store import ModelStore
from medlabel.interactive.volume import Volume
from medlabel.interactive.preprocess import in_memory_transforms
from medlabel.kinds.scribbles.prior import PriorCache, answer_in_box, probabilities_in_box, structure_probability
from medlabel.kinds.segmentation.answers import LastAnswers, WholeImageAnswer
from medlabel.kinds.scribbles.refinement import refine
from medlabel.kinds.scribbles.request import Scribbles
from medlabel.kinds.scribbles.spec import ScribblesSpec
from medlabel.kinds.segmentation.predictor import Predictor
from medlabel.spec import ModelSpec, NetworkSpec, ZScore

SPEC = ModelSpec(name="organ3", labels={"organ": 1, "other": 2}, spacing_mm=(2.0, 2.0, 2.0), roi_size=(16, 16, 16),
                 intensity=ZScore(), network=NetworkSpec(channels=(4, 8)))


def scene(tmp_path):
    torch.manual_seed(0)
    predictor = Predictor(ModelStore(tmp_path, SPEC))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # the model's spacing
    volume = Volume(np.random.default_rng(0).normal(size=(40, 36, 20)).astype(np.float32), affine)
    return predictor, volume


def test_one_channel_prior_is_the_structure_against_its_rival(tmp_path):
    predictor, volume = scene(tmp_path)
    box = (slice(5, 30), slice(4, 28), slice(3, 15))
    full = probabilities_in_box(predictor, volume, box, 0.0, torch.device("cpu"), 0.0)
    for structure, rival in ((1, 2), (2, 1)):
        one = probabilities_in_box(predictor, volume, box, 0.0, torch.device("cpu"), 0.0, structure=structure)
        assert one.shape == (25, 24, 12) and one.min() >= 0 and one.max() <= 1
        # the same ratio, only computed before resampling (the pre-processing still resamples by a voxel's fraction)
        same = np.abs(one - structure_probability(full, structure)).mean()
        other = np.abs(one - structure_probability(full, rival)).mean()
        assert same < 0.02 and other > 5 * same  # and of the structure asked for


def test_refinement_reads_the_prior_of_any_structure(tmp_path):
    """Label index 2 (e.g. a tumour under a liver model) once failed: the refinement indexed a 2-channel prior."""
    predictor, volume = scene(tmp_path)
    fg, bg = np.zeros(volume.shape, bool), np.zeros(volume.shape, bool)
    fg[18:22, 16:20, 8:12], bg[2:5, 2:5, 2:5] = True, True
    spec = ScribblesSpec(name="organ3_scribbles", prior=SPEC, margin_mm=6.0)
    prior = lambda box: probabilities_in_box(predictor, volume, box, 4.0, torch.device("cpu"), 0.0, 2)  # noqa: E731
    result = refine(volume, Scribbles(fg, bg, "other", None, None), spec, prior)
    assert result.label.shape == volume.shape and result.label[fg].all() and not result.label[bg].any()


def test_a_box_inside_the_cached_one_is_cropped_from_it(tmp_path):
    """Slicer's flow: the ROI stays, stroke follows stroke; the second call must not run the network."""
    predictor, volume = scene(tmp_path)
    image = tmp_path / "image.nii.gz"
    image.write_bytes(b"stands for the image file: the cache keys on its path, size and mtime")
    cache, cpu = PriorCache(), torch.device("cpu")
    outer, inner = (slice(5, 30), slice(4, 28), slice(3, 15)), (slice(8, 20), slice(4, 10), slice(5, 15))
    for structure in (1, None):
        whole = cache.get(predictor, str(image), volume, outer, 0.0, cpu, 0.0, structure)
        part = cache.get(predictor, str(image), volume, inner, 0.0, cpu, 0.0, structure)
        assert np.shares_memory(part, whole)  # cropped, not recomputed
        assert part.shape[-3:] == (12, 6, 10) and part.ndim == (3 if structure else 4)
        assert np.array_equal(part, whole[(..., slice(3, 15), slice(0, 6), slice(2, 12))])


def whole_image_answer(predictor, volume):
    image = MetaTensor(torch.from_numpy(volume.array)[None], affine=torch.as_tensor(volume.affine))
    image = in_memory_transforms(predictor.spec)({"image": image})["image"]
    prob = predictor.probabilities(image, torch.device("cpu"), 0.0)
    return prob, WholeImageAnswer(prob.half(), image.affine.numpy())


def test_the_models_whole_image_answer_is_cropped_onto_the_box(tmp_path):
    predictor, volume = scene(tmp_path)  # the image is on the model's grid: the crop must be exact
    prob, answer = whole_image_answer(predictor, volume)
    box = (slice(5, 30), slice(4, 28), slice(3, 15))
    for structure in (1, 2):
        got = answer_in_box(answer, volume, box, structure)
        assert np.abs(got - structure_probability(prob.numpy(), structure)[box]).max() < 2e-3  # float16 kept
    assert answer_in_box(answer, volume, box).shape == (3, 25, 24, 12)


def test_the_kept_answer_is_dropped_when_the_image_file_or_the_weights_change(tmp_path):
    predictor, volume = scene(tmp_path)
    image = tmp_path / "image.nii.gz"
    image.write_bytes(b"stands for the image file")
    prob, answer = whole_image_answer(predictor, volume)
    answers = LastAnswers()
    answers.put(predictor, predictor.version, str(image), prob, answer.affine)
    assert torch.equal(answers.get(predictor, str(image)).prob, answer.prob)
    answers.put(predictor, predictor.version + 1, str(image), prob, answer.affine)  # other weights
    assert answers.get(predictor, str(image)) is None
    answers.put(predictor, predictor.version, str(image), prob, answer.affine)
    os.utime(image, ns=(1, 1))  # the file was replaced
    assert answers.get(predictor, str(image)) is None
