import numpy as np

from medlabel.interactive.volume import Volume
from medlabel.kinds.scribbles.prior import structure_probability
from medlabel.kinds.scribbles.refinement import cut, refine
from medlabel.kinds.scribbles.request import Scribbles
from medlabel.kinds.scribbles.spec import ScribblesSpec
from medlabel.spec import ModelSpec, ZScore

PRIOR = ModelSpec(name="organ", labels={"organ": 1}, intensity=ZScore())
SPEC = ScribblesSpec(name="organ_scribbles", prior=PRIOR, margin_mm=6.0)


def phantom(shape=(40, 40, 40)):
    grid = np.indices(shape)
    truth = sum((g - 20) ** 2 for g in grid) <= 10**2
    rng = np.random.default_rng(0)
    image = np.where(truth, 100.0, 20.0) + rng.normal(0, 8, shape)
    return Volume(image.astype(np.float32), np.eye(4)), truth


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_structure_probability_is_argmax_consistent_and_neutral_when_unsure():
    prob = np.array([[0.2, 1 / 3, 0.6], [0.7, 1 / 3, 0.3], [0.1, 1 / 3, 0.1]])[..., None, None]  # (C, 3, 1, 1)
    p = structure_probability(prob, 1)[:, 0, 0]
    assert p[0] > 0.5 and abs(p[1] - 0.5) < 1e-6 and p[2] < 0.5


def test_strokes_fix_an_unsure_model_inside_the_box_only():
    volume, truth = phantom()
    fg = np.zeros_like(truth)
    fg[18:23, 20, 20] = True
    bg = np.zeros_like(truth)
    bg[3:8, 20, 20] = True
    current = np.zeros_like(truth)
    current[0:2, 0:2, 0:2] = True  # the client's segment, far away: kept as sent
    unsure = lambda box: np.full([s.stop - s.start for s in box], 0.5, np.float32)  # noqa: E731
    result = refine(volume, Scribbles(fg, bg, "organ", current, None), SPEC, unsure)
    inside = np.zeros_like(truth)
    inside[result.box] = True
    label = result.label == 1
    assert dice(label & inside, truth & inside) > 0.9
    assert (label[~inside] == current[~inside]).all() and label[fg].all() and not label[bg].any()


def test_a_single_foreground_stroke_is_enough():
    volume, truth = phantom()
    fg = np.zeros_like(truth)
    fg[18:23, 20, 20] = True
    unsure = lambda box: np.full([s.stop - s.start for s in box], 0.5, np.float32)  # noqa: E731
    roi = (slice(5, 35), slice(5, 35), slice(5, 35))
    result = refine(volume, Scribbles(fg, np.zeros_like(fg), "organ", None, roi), SPEC, unsure)
    assert dice(result.label == 1, truth) > 0.9 and result.box == roi


def test_large_boxes_are_cut_on_a_coarser_grid_keeping_the_strokes():
    volume, truth = phantom()
    fg = np.zeros_like(truth)
    fg[18:23, 20, 20] = True
    bg = np.zeros_like(truth)
    bg[0, 0:40, 0] = True
    unary = np.stack([truth.astype(np.float32) * 3, (~truth).astype(np.float32) * 3])
    label, factor = cut(volume.array, unary, fg, bg, (1.0, 1.0, 1.0), 1.0, max_voxels=10_000)
    assert factor == 2 and label.shape == truth.shape and dice(label == 1, truth) > 0.9
    assert label[fg].all() and not label[bg].any()


def test_a_first_stroke_inside_a_large_structure_grows_it():
    """The box around a stroke in a large organ is mostly that organ: the background intensity model must
    not be fitted on it (it once was, and a first stroke shrank an untrained model's liver)."""
    volume, truth = phantom()
    fg = np.zeros_like(truth)
    fg[18:23, 20, 20] = True
    current = np.zeros_like(truth)
    current[15:25, 15:25, 15:20] = True  # the client's segment covers part of the structure
    unsure = lambda box: np.full([s.stop - s.start for s in box], 0.5, np.float32)  # noqa: E731
    result = refine(volume, Scribbles(fg, np.zeros_like(fg), "organ", current, None), SPEC, unsure)
    assert truth[result.box].mean() > 0.7  # the case: the box is mostly structure
    label = result.label == 1
    assert dice(label, truth) > dice(current, truth) + 0.2 and dice(label[result.box], truth[result.box]) > 0.95


def test_a_background_stroke_alone_removes_what_it_marks():
    """A single "remove this" stroke is a valid request: the foreground model is fitted on what is unlike it."""
    volume, truth = phantom()
    current = truth.copy()
    current[20:30, 20:30, 0:8] = True  # false foreground outside the structure
    bg = np.zeros_like(truth)
    bg[22:28, 25, 4] = True
    confident = lambda box: current[box].astype(np.float32)  # noqa: E731
    result = refine(volume, Scribbles(np.zeros_like(bg), bg, "organ", current, None), SPEC, confident)
    label = result.label == 1
    assert not label[bg].any() and dice(label, truth) > dice(current, truth)


def test_a_new_stroke_keeps_an_earlier_correction_elsewhere_in_the_box():
    volume, truth = phantom()
    removed = truth.copy()
    removed[14:] = False  # the user removed this cap earlier (say, another organ): keep it removed
    missed = truth.copy()
    missed[:27] = False  # the model missed the other cap; the new stroke paints it
    current = truth & ~removed & ~missed
    fg = np.zeros_like(truth)
    fg[27:30, 18:23, 20] = True
    whole = (slice(0, 40),) * 3
    unsure = lambda box: np.full([s.stop - s.start for s in box], 0.5, np.float32)  # noqa: E731
    label = refine(volume, Scribbles(fg, np.zeros_like(fg), "organ", current, whole), SPEC, unsure).label == 1
    assert dice(label & missed, missed) > 0.8  # the stroke's region is refined
    assert not (label & removed).any()  # the earlier correction, not connected to the stroke, stays
    unseen = refine(volume, Scribbles(fg, np.zeros_like(fg), "organ", None, whole), SPEC, unsure).label == 1
    assert dice(unseen & removed, removed) > 0.8  # without the current segment, the cut alone brings it back
