import numpy as np

from medlabel.interactive.simulate import interior_point, largest_error, next_click, next_stroke


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def test_first_click_is_the_centre_of_a_missed_ball():
    truth = ball((40, 40, 40), (20, 22, 18), 8)
    click = next_click(np.zeros_like(truth), truth)
    assert click.foreground and click.point == (20, 22, 18) and click.error_voxels == truth.sum()


def test_click_goes_to_the_largest_error_and_knows_its_kind():
    truth = ball((40, 40, 40), (20, 20, 20), 8)
    pred = truth | ball((40, 40, 40), (5, 5, 5), 4)  # a false blob bigger than the miss below
    pred[20, 20, 28] = False  # a one-voxel miss
    click = next_click(pred, truth)
    assert not click.foreground and np.linalg.norm(np.subtract(click.point, (5, 5, 5))) <= 1
    assert next_click(truth, truth) is None and largest_error(truth, truth) is None


def test_stroke_stays_inside_the_error_on_one_slice():
    truth = ball((40, 40, 40), (20, 20, 20), 10)
    mask, foreground = next_stroke(np.zeros_like(truth), truth, radius_vox=5)
    assert foreground and mask.any() and not (mask & ~truth).any()
    assert len(np.unique(np.nonzero(mask)[2])) == 1  # one axial slice
    assert 10 < mask.sum() <= np.pi * 25 + 5


def test_interior_point_of_a_box_touching_the_border():
    region = np.zeros((10, 10, 10), bool)
    region[:5, :, :] = True
    assert interior_point(region)[0] in (2,)  # the array border counts as a border
