"""labelme JSON (written here) imported into a real local datastore as classes, masks and boxes."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.datastore.local import CheckedLocalDatastore
from medlabel.errors import BadRequest
from medlabel.io.labelme import LabelmeError, import_labelme, read_labelme
from medlabel.kinds.classification.labels import label_check
from medlabel.kinds.classification.spec import ClassificationSpec

SPEC = ClassificationSpec(name="xray", classes=("nodule", "pacemaker", "normal"), multi_label=True)
W, H = 40, 30


@pytest.fixture
def studies(tmp_path):
    folder = tmp_path / "studies"
    folder.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((H, W), np.uint8)), str(folder / "chest_001.png"))
    return folder


def labelme_file(tmp_path, shapes, flags=None, image="chest_001.png", size=(H, W)):
    path = tmp_path / "chest_001.json"
    path.write_text(json.dumps({"version": "5.4.1", "flags": flags or {}, "shapes": [
        {"label": label, "points": points, "shape_type": kind, "group_id": None, "flags": {}}
        for label, kind, points in shapes], "imagePath": f"..\\images\\{image}", "imageData": None,
        "imageHeight": size[0], "imageWidth": size[1]}))
    return path


SHAPES = [
    ("nodule", "polygon", [[5, 5], [15, 5], [15, 12], [5, 12]]),
    ("pacemaker", "rectangle", [[30, 20], [25, 16]]),
    ("nodule", "point", [[35, 3]]),
]


def store(studies, check=None):
    return CheckedLocalDatastore(str(studies), check_label=check, extensions=("*.png", "*.nii.gz"))


def test_classes_are_the_shapes_labels_and_set_flags(tmp_path, studies):
    ds = store(studies, lambda label, image, image_id, info: label_check([SPEC])(label, image, image_id))
    path = labelme_file(tmp_path, SHAPES, flags={"normal": False})
    assert import_labelme(path, ds, "classes") == "chest_001"
    stored = json.loads(open(ds.get_label_uri("chest_001", "final")).read())
    assert stored == {"classes": ["nodule", "pacemaker"]}
    assert ds.get_label_info("chest_001", "final")["labelme_mode"] == "classes"
    # a class the model does not know is refused by the model's own check, and nothing is stored
    with pytest.raises(BadRequest, match="unknown class"):
        import_labelme(labelme_file(tmp_path, [("tumour", "point", [[1, 1]])]), ds, "classes")
    assert json.loads(open(ds.get_label_uri("chest_001", "final")).read()) == stored


def test_mask_draws_each_shape_on_the_image_grid(tmp_path, studies):
    ds = store(studies)
    import_labelme(labelme_file(tmp_path, SHAPES), ds, "mask", label_ids={"nodule": 1, "pacemaker": 2})
    mask = sitk.GetArrayFromImage(sitk.ReadImage(ds.get_label_uri("chest_001", "final")))  # [row, column]
    assert mask.shape == (H, W)
    assert mask[8, 10] == 1 and mask[5:13, 5:16].min() == 1 and mask[4, 10] == 0 and mask[13, 10] == 0
    assert mask[16:21, 25:31].min() == 2 and (mask == 2).sum() == 5 * 6
    assert mask[3, 35] == 1 and (mask == 1).sum() == 8 * 11 + 1
    with pytest.raises(LabelmeError, match="not among"):
        import_labelme(labelme_file(tmp_path, SHAPES), ds, "mask", label_ids={"nodule": 1})
    with pytest.raises(LabelmeError, match=r"40x31 image.*\(40, 30\)"):  # file made for another image size
        import_labelme(labelme_file(tmp_path, SHAPES, size=(H + 1, W)), ds, "mask", label_ids={"nodule": 1, "pacemaker": 2})


def test_boxes_from_rectangles_and_polygons(tmp_path, studies):
    ds = store(studies, lambda *args: None)
    import_labelme(labelme_file(tmp_path, SHAPES), ds, "boxes")
    stored = json.loads(open(ds.get_label_uri("chest_001", "final")).read())
    assert stored["boxes"] == [{"label": "nodule", "box_xyxy": [5, 5, 15, 12]},
                               {"label": "pacemaker", "box_xyxy": [25, 16, 30, 20]}]


@pytest.mark.parametrize("content, message", [("{", "not a labelme file"),
                                              ('{"shapes": [{"label": "a", "points": [[1, 2]], "shape_type": "polygon"}],'
                                               ' "imagePath": "x.png", "imageHeight": 2, "imageWidth": 2}', "at least 3")])
def test_broken_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(LabelmeError, match=message):
        read_labelme(path)
