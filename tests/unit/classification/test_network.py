"""Networks, transfer learning from a checkpoint, explanation maps and their placement on the image grid."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medlabel.continual.store import ModelStore
from medlabel.kinds.classification.infer import ClassificationInfer
from medlabel.kinds.classification.network import build_network, load_pretrained, parameter_groups
from medlabel.kinds.classification.predictor import ClassificationPredictor
from medlabel.kinds.classification.spec import ClassificationSpec, ClassifierNetwork
from medlabel.spec import ZScore


@pytest.mark.parametrize(
    "dims, arch, explanation", [(2, "resnet", "gradcam"), (3, "resnet", "gradcampp"), (2, "densenet121", "gradcam"),
                                (2, "vit", "occlusion")],
)
def test_every_network_classifies_embeds_and_explains(tmp_path, dims, arch, explanation):
    spec = ClassificationSpec(name="m", classes=("a", "b", "c"), dims=dims, input_size=(32 if arch == "densenet121" else 16,) * dims,
                              network=ClassifierNetwork(arch=arch, vit_patch=4, vit_hidden=32), explanation=explanation,
                              intensity=ZScore())
    predictor = ClassificationPredictor(ModelStore(tmp_path, spec))
    x = torch.rand(1, *spec.input_size)
    prob = predictor.probabilities(x, torch.device("cpu"))
    assert prob.shape == (3,) and float(prob.sum()) == pytest.approx(1.0, abs=1e-5)
    assert predictor.embedding(x, torch.device("cpu")).ndim == 1
    samples = predictor.sampled_probabilities(x, torch.device("cpu"), 4)
    assert samples.shape == (4, 3) and not torch.allclose(samples[0], samples[1])  # dropout is active
    cam = predictor.explain(x, torch.device("cpu"), 1)
    assert cam.shape == spec.input_size and cam.min() >= 0 and cam.max() <= 1 + 1e-6


def test_pretrained_backbone_loads_and_learns_slower(tmp_path):
    source = ClassificationSpec(name="m", classes=("x", "y", "z"))
    checkpoint = tmp_path / "other_task.pt"
    torch.save({"state_dict": build_network(source).state_dict()}, checkpoint)
    spec = ClassificationSpec(name="m", classes=("a", "b"), network=ClassifierNetwork(pretrained=checkpoint))
    net = build_network(spec)
    reference = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(net.state_dict()["backbone.conv1.weight"], reference["backbone.conv1.weight"])
    assert net.head[1].out_features == 2  # the 3-class head of the checkpoint does not fit and is left out
    groups = parameter_groups(net, spec, lr=1e-3)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), 1e-3]
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_pretrained(net, tmp_path / "missing.pt")


def test_map_is_written_on_the_tile_grid(tmp_path):
    affine = np.array([[-0.8, 0, 0, 10.0], [0, 0.8, 0, -20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    image = np.zeros((40, 24, 1), np.float32)
    image[5:15, 3:10] = 1.0  # a bright block
    path = tmp_path / "tile.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), path)
    spec = ClassificationSpec(name="m", classes=("a", "b"), input_size=(32, 32), intensity=ZScore())
    infer = ClassificationInfer(ClassificationPredictor(ModelStore(tmp_path / "models", spec)), "cpu")
    result, params = infer({"image": str(path), "result_extension": ".nii.gz"})
    out, ref = sitk.ReadImage(result), sitk.ReadImage(str(path))
    assert out.GetSize() == ref.GetSize() == (40, 24, 1)
    assert np.allclose(out.GetOrigin(), ref.GetOrigin()) and np.allclose(out.GetSpacing(), ref.GetSpacing())
    assert np.allclose(out.GetDirection(), ref.GetDirection())
    assert set(params["classes"]) == {"a", "b"} and params["predicted"] and params["explanation"]["method"] == "gradcam"
    _, no_map = infer({"image": str(path), "explain": False})
    assert _ is None and no_map["classes"] == params["classes"]
