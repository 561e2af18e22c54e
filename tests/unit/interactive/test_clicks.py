import numpy as np
import pytest

from medlabel.errors import BadRequest
from medlabel.kinds.clicks.infer import parse_points
from medlabel.kinds.clicks.predictor import to_grid
from medlabel.kinds.clicks.spec import ClickSpec


def test_points_as_slicer_sends_them():
    assert parse_points([[1, 2, 3], [4.4, 5.6, 0]], "foreground", (10, 10, 10)) == [[1, 2, 3], [4, 6, 0]]
    assert parse_points([], "background", (10, 10, 10)) == [] and parse_points(None, "background", (2, 2, 2)) == []


@pytest.mark.parametrize("value, message", [([[1, 2]], "list of"), ([[1, 2, 10]], "outside the image"),
                                            ("1,2,3", "list of"), ([[True, 1, 1]], "list of"), ([[-1, 0, 0]], "outside")])
def test_bad_points_are_client_errors(value, message):
    with pytest.raises(BadRequest, match=message):
        parse_points(value, "foreground", (10, 10, 10))


def test_points_move_between_grids_through_world():
    image = np.array([[-0.5, 0, 0, 10.0], [0, 0.5, 0, 0.0], [0, 0, 2.0, 0.0], [0, 0, 0, 1]])
    model = np.diag([2.0, 2.0, 2.0, 1.0])
    model[:3, 3] = [-20.0, 0.0, 0.0]
    # voxel (4, 8, 3) of the image is at world (8, 4, 6): model voxel (14, 2, 3)
    assert to_grid([[4, 8, 3]], image, model) == [[14, 2, 3]]


def test_click_spec_takes_one_structure():
    assert ClickSpec(name="liver_clicks", labels={"liver": 1}).label_id == 1
    with pytest.raises(ValueError, match="exactly one structure"):
        ClickSpec(name="two", labels={"liver": 1, "tumour": 2})


def test_training_clicks_survive_a_patch_without_the_structure():
    """An image without the structure (one demo CT octant has no liver) must not end click training."""
    import json

    from monai.apps.deepgrow.transforms import AddGuidanceSignald

    from medlabel.kinds.clicks.transforms import InitialClick

    empty = {"image": np.zeros((1, 8, 8, 8), np.float32), "label": np.zeros((1, 8, 8, 8), np.float32)}
    out = AddGuidanceSignald("image", "guidance")(InitialClick("label", "guidance")(empty))
    assert out["image"].shape == (3, 8, 8, 8) and not out["image"][1:].any()  # no click channels lit
    label = np.zeros((1, 8, 8, 8), np.float32)
    label[0, 2:6, 2:6, 2:6] = 1
    clicks = json.loads(InitialClick("label", "guidance")({"image": empty["image"], "label": label})["guidance"])
    x, y, z = clicks[0][0][1:]
    assert label[0, x, y, z] == 1  # the first click lies on the structure
