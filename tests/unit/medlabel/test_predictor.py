import pytest
import torch
from monai.inferers import sliding_window_inference

from medlabel.kinds.segmentation.network import build_network
from medlabel.kinds.segmentation.predictor import one_window_logits, window_size
from medlabel.spec import ModelSpec, NetworkSpec


def test_window_shrinks_only_along_axes_where_the_image_is_smaller_than_the_roi():
    assert window_size((64, 70, 200), (96, 96, 96), 16) == (64, 80, 96)
    assert window_size((1, 17, 96), (48, 48, 48), 16) == (16, 32, 48)
    assert window_size((300, 300, 300), (96, 96, 96), 16) == (96, 96, 96)
    assert window_size((86, 86, 86), (96, 96, 96), 8) == (88, 88, 88)


def test_a_window_is_a_multiple_of_the_network_downsampling():
    from medlabel.spec import NetworkSpec

    assert NetworkSpec(channels=(16, 32, 64, 128)).downsampling == 8
    assert NetworkSpec(channels=(8, 16)).downsampling == 2


@pytest.mark.parametrize("arch", ["unet", "segresnet", "dynunet"])
def test_one_window_is_exactly_the_sliding_window_it_replaces(arch):
    torch.manual_seed(0)
    network_spec = NetworkSpec(arch=arch, channels=(8, 16, 32))
    spec = ModelSpec(name="m", labels={"a": 1}, roi_size=(32, 32, 32), network=network_spec)
    network = build_network(spec).eval()
    image = torch.randn(1, 1, 27, 30, 17)
    window = window_size(image.shape[2:], spec.roi_size, spec.network.downsampling)
    assert window == (28, 32, 20)
    with torch.no_grad():
        expected = sliding_window_inference(image, window, 1, network, overlap=0.25, mode="gaussian")
        got = one_window_logits(image, window, network)
    assert got.shape == expected.shape == (1, 2, 27, 30, 17)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
