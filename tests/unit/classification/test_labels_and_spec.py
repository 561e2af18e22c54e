"""Class labels: what is accepted, what is refused and how it says so; the spec's own checks."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from medlabel.errors import BadRequest
from medlabel.kinds.classification.labels import label_check, target_vector
from medlabel.kinds.classification.spec import ClassificationSpec, ClassifierNetwork

MULTI = ClassificationSpec(name="liver_tiles", classes=("liver", "tumour"), multi_label=True)
SINGLE = ClassificationSpec(name="brain_tiles", classes=("brain", "no_brain"))


def write(tmp_path, content) -> str:
    path = tmp_path / "label.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_known_classes_pass_and_become_vectors(tmp_path):
    label_check([MULTI])(write(tmp_path, {"classes": ["tumour"]}), "img", "a")
    label_check([MULTI])(write(tmp_path, {"classes": []}), "img", "a")  # multi-label: nothing present
    assert target_vector(["tumour"], MULTI).tolist() == [0.0, 1.0]
    assert np.array_equal(target_vector(["no_brain"], SINGLE), [0.0, 1.0])


@pytest.mark.parametrize(
    "content, words",
    [
        ({"classes": ["tumor"]}, ["unknown", "tumor", "'tumour'"]),
        ("not json", ["not JSON", '"classes"']),
        ({"labels": ["liver"]}, ['"classes" list']),
        ({"classes": ["liver", "liver"]}, ["twice"]),
    ],
)
def test_bad_labels_are_refused_with_what_to_fix(tmp_path, content, words):
    with pytest.raises(BadRequest) as e:
        label_check([MULTI])(write(tmp_path, content), "img", "a")
    assert e.value.status_code == 400 and all(w in e.value.message for w in words), e.value.message


def test_single_label_needs_exactly_one_class(tmp_path):
    with pytest.raises(BadRequest, match="exactly one"):
        label_check([SINGLE])(write(tmp_path, {"classes": ["brain", "no_brain"]}), "img", "a")


def test_a_label_fitting_any_of_the_apps_models_passes(tmp_path):
    label_check([MULTI, SINGLE])(write(tmp_path, {"classes": ["brain"]}), "img", "a")


def test_spec_checks():
    assert MULTI.labels == {"liver": 0, "tumour": 1} and MULTI.num_classes == 2
    with pytest.raises(ValidationError, match="input_size"):
        ClassificationSpec(name="m", classes=("a", "b"), dims=3, input_size=(32, 32))
    with pytest.raises(ValidationError, match="single-label"):
        ClassificationSpec(name="m", classes=("a",))
    with pytest.raises(ValidationError, match="occlusion"):
        ClassificationSpec(name="m", classes=("a", "b"), network=ClassifierNetwork(arch="vit"))
    with pytest.raises(ValidationError, match="at least 32"):
        ClassificationSpec(name="m", classes=("a", "b"), dims=3, input_size=(24, 24, 24),
                           network=ClassifierNetwork(arch="densenet121"))


def test_class_labels_are_versioned_like_masks(tmp_path):
    """Each accepted JSON label is a new version in the label history; a refused one adds none."""
    import SimpleITK as sitk

    from medlabel.datastore.local import CheckedLocalDatastore

    studies = tmp_path / "studies"
    studies.mkdir()
    sitk.WriteImage(sitk.Image(8, 8, 1, sitk.sitkInt16), str(studies / "tile.nii.gz"))
    ds = CheckedLocalDatastore(str(studies), check_label=lambda label, image, image_id, info:
                               label_check([MULTI])(label, image, image_id), extensions=("*.nii.gz",))
    for classes in (["liver"], ["liver", "tumour"]):
        ds.save_label("tile", write(tmp_path, {"classes": classes}), "final", {"client_id": "ann"})
    with pytest.raises(BadRequest, match="unknown"):
        ds.save_label("tile", write(tmp_path, {"classes": ["tumor"]}), "final", {"client_id": "ann"})
    versions = ds.history.versions("tile")
    assert [v.version for v in versions] == [1, 2] and versions[0].submitted_by == "ann"
    assert json.loads(ds.history.path("tile", 1).read_text()) == {"classes": ["liver"]}
    assert json.loads(open(ds.get_label_uri("tile", "final")).read()) == {"classes": ["liver", "tumour"]}
    assert ds.get_label_info("tile", "final")["version"] == 2
