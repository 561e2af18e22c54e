import numpy as np
import pytest

from scribbles import ScribbleError, keep_local_changes, new_strokes


def square(shape, lo, hi):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(lo, hi) for _ in shape)] = True
    return mask


def test_new_strokes_are_the_ones_the_segmentation_around_them_disagrees_with():
    current = square((20, 20, 20), 5, 15)
    fg = np.zeros_like(current)
    fg[8:12, 10, 10] = True  # inside the structure: applied earlier
    fg[16:19, 10, 10] = True  # outside: new
    bg = np.zeros_like(current)
    bg[11:13, 12, 12] = True  # inside: new
    bg[1:3, 1, 1] = True  # outside: applied earlier
    shown = current.copy()
    shown[fg | bg] = False  # Slicer's label map has the strokes' own values under them
    assert (new_strokes(shown, fg, bg) == (fg & ~current) | (bg & current)).all()


def test_small_changes_away_from_the_new_stroke_are_dropped():
    current = square((30, 30, 30), 10, 20)
    proposed = current.copy()
    proposed[20:23, 10:20, 10:20] = True  # grows on one side, where the stroke is
    proposed[0:3, 0:3, 0:3] = True  # a far blob the stroke has nothing to do with
    proposed[12:14, 12:14, 12:14] = False  # a hole inside, not touching the stroke either
    stroke = np.zeros_like(current)
    stroke[22, 15, 15] = True
    result = keep_local_changes(current, proposed, stroke)
    assert result[20:23, 10:20, 10:20].all()
    assert not result[0:3, 0:3, 0:3].any() and result[12:14, 12:14, 12:14].all()


def test_large_far_changes_are_kept_small_ones_dropped():
    current = square((40, 40, 40), 0, 20)
    proposed = current.copy()
    proposed[0:10, 0:10, 0:10] = False  # 1000 voxels removed far from the stroke: a decision
    proposed[30:34, 30:34, 30:34] = True  # 64 voxels added far from it: jitter
    stroke = np.zeros_like(current)
    stroke[15, 15, 15] = True
    proposed[15, 15, 15] = False
    result = keep_local_changes(current, proposed, stroke)
    assert not result[0:10, 0:10, 0:10].any() and not result[30:34, 30:34, 30:34].any()
    assert keep_local_changes(current, proposed, stroke, min_region=2000)[0:10, 0:10, 0:10].all()


def test_a_change_adjacent_to_the_stroke_counts_as_touching_it():
    current = np.zeros((10, 10), bool)
    proposed = current.copy()
    proposed[2:5, 2:5] = True
    stroke = np.zeros_like(current)
    stroke[5, 3] = True  # the stroke's neighbour changed, not the stroke itself
    assert (keep_local_changes(current, proposed, stroke) == proposed).all()


def test_without_new_strokes_the_proposal_stands():
    current = square((10, 10), 2, 5)
    proposed = square((10, 10), 4, 8)
    assert (keep_local_changes(current, proposed, np.zeros_like(current)) == proposed).all()


def test_shapes_must_agree():
    with pytest.raises(ScribbleError, match="shape"):
        keep_local_changes(np.zeros((4, 4, 4), bool), np.zeros((4, 4, 5), bool), np.zeros((4, 4, 4), bool))
