"""Generation kind: degradation geometry, metrics against baselines on real CT, parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from pydantic import ValidationError

from medlabel.errors import BadRequest
from medlabel.kinds.generation.degrade import Degraded, add_noise, crop_to_factor, cubic_slices, thicken, thin_slices
from medlabel.kinds.generation.infer import restoration_level
from medlabel.kinds.generation.metrics import baselines, compare, evaluate_restoration, psnr, ssim
from medlabel.kinds.generation.network import build_restoration_network
from medlabel.kinds.generation.restore import to_window
from medlabel.kinds.generation.spec import Denoise, RestorationSpec, SuperResolution
from medlabel.kinds.generation.writer import thin_grid

DENOISE = RestorationSpec(name="ct_denoise", degradation=Denoise(min_noise_hu=10, max_noise_hu=80, default_noise_hu=40))
SUPERRES = RestorationSpec(name="ct_superres", degradation=SuperResolution(factors=(2, 4), default_factor=2))


@pytest.fixture(scope="module")
def held_out_ct(demo_data) -> torch.Tensor:
    """A real CT octant (1, I, J, K) in window units."""
    image = sitk.ReadImage(str(demo_data / "studies" / "liver-ct" / "lits117_subvolume_x1y1z0.nii.gz"))
    hu = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32)
    return to_window(hu, DENOISE)[None]


def test_thicken_averages_groups_and_drops_the_remainder():
    x = torch.arange(10, dtype=torch.float32).reshape(1, 1, 1, 10)
    assert thicken(x, 4).flatten().tolist() == [1.5, 5.5]
    assert crop_to_factor(x, 4).shape[-1] == 8


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("interpolate, inner, atol",
                         [(thin_slices, slice(4, 28), 1e-5), (cubic_slices, slice(12, 20), 2e-2)])
def test_thin_slices_puts_each_thick_slice_at_the_centre_of_its_thin_slices(factor, interpolate, inner, atol):
    """Linear and cubic-spline slices share one geometry. The ends are extrapolated by edge clamping; the
    spline's clamped ends ripple inwards, decaying by about 0.27 per thick slice."""
    ramp = torch.arange(32, dtype=torch.float32).reshape(1, 1, 1, 32)  # linear along K: averaging keeps centres
    thin = interpolate(thicken(ramp, factor), factor)
    assert torch.allclose(thin[..., inner], ramp[..., inner], atol=atol)


@pytest.mark.parametrize("factor", [2, 4])
def test_thin_grid_world_positions_match_the_interpolation(factor):
    image = sitk.Image(8, 8, 6, sitk.sitkInt16)
    image.SetSpacing((0.8, 0.8, 5.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))  # permuted, flipped axes
    origin, spacing, direction = thin_grid(image, factor)
    thin = sitk.Image(8, 8, 6 * factor, sitk.sitkInt16)
    thin.SetOrigin(origin), thin.SetSpacing(spacing), thin.SetDirection(direction)
    for s in range(6):  # thick slice s is thin index factor*s + (factor-1)/2
        thick_point = image.TransformContinuousIndexToPhysicalPoint((3.0, 4.0, float(s)))
        thin_point = thin.TransformContinuousIndexToPhysicalPoint((3.0, 4.0, factor * s + (factor - 1) / 2))
        assert np.allclose(thick_point, thin_point, atol=1e-6)


def test_noise_has_the_requested_level():
    x = torch.zeros(1, 32, 32, 32)
    noisy = add_noise(x, 0.02, torch.Generator().manual_seed(0))
    assert abs(float(noisy.std()) - 0.02) < 0.001


def test_psnr_and_ssim_definitions():
    x = torch.rand(1, 24, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    noisy = add_noise(x, 0.01, torch.Generator().manual_seed(1))
    assert abs(psnr(noisy, x) - 20 * math.log10(1 / 0.01)) < 0.1  # PSNR = 20 log10(range / RMSE)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert ssim(noisy, x) < 1.0


def test_noisy_baseline_on_real_ct_matches_the_noise_level(held_out_ct):
    """40 HU noise in a 2000 HU window is a PSNR of 20 log10(2000 / 40) = 34 dB (clipping removes a little)."""
    level = 40.0
    noisy = add_noise(held_out_ct, level / DENOISE.window.width, torch.Generator().manual_seed(0))
    measured = compare(noisy, {}, held_out_ct)
    assert 33.8 < measured["psnr"] < 34.6
    assert 0.5 < measured["ssim"] < 1.0


def test_super_resolution_baselines_on_real_ct(held_out_ct):
    """On real CT, cubic slice interpolation beats linear, and both beat repeating the thick slices."""
    for factor in (2, 4):
        clean = crop_to_factor(held_out_ct, factor)
        thick = thicken(held_out_ct, factor)
        repeated = thick.repeat_interleave(factor, dim=-1)
        linear, cubic = thin_slices(thick, factor), cubic_slices(thick, factor)
        assert psnr(cubic, clean) > psnr(linear, clean) > psnr(repeated, clean)


def test_untrained_model_returns_the_baseline(demo_data):
    """Version 0's head is zero: the gate's reference is the baseline itself, so training must beat it."""
    datalist = [{"image": str(demo_data / "studies" / "liver-ct" / "lits117_subvolume_x1y1z0.nii.gz")}]
    for spec, baseline in ((DENOISE, "noisy"), (SUPERRES, "cubic")):  # super-resolution starts from cubic splines
        torch.manual_seed(0)
        result = evaluate_restoration(spec, build_restoration_network(spec), datalist, torch.device("cpu"))
        assert result["score"] == pytest.approx(result[f"psnr_{baseline}"], abs=1e-4)


def test_validation_degradation_is_repeatable(held_out_ct):
    item = {"image": held_out_ct.clone()}
    t = Degraded(DENOISE.degradation, DENOISE.window, fixed=True)
    a, b = t(dict(item)), t(dict(item))
    assert torch.equal(a["image"], b["image"]) and a["image"].shape[0] == 2
    assert torch.allclose(a["image"][1], torch.tensor(40 / 80))  # the condition channel
    sr = Degraded(SUPERRES.degradation, SUPERRES.window)
    sr.set_random_state(0)
    out = sr(dict(item))
    assert out["image"].shape[1:] == out["label"].shape[1:] == held_out_ct.shape[1:]


def test_paired_target_sets_the_measured_noise_level(held_out_ct):
    noisy = add_noise(held_out_ct, 30 / DENOISE.window.width, torch.Generator().manual_seed(0))
    out = Degraded(DENOISE.degradation, DENOISE.window)({"image": noisy, "label": held_out_ct})
    assert torch.equal(out["label"], held_out_ct)
    assert float(out["image"][1].mean()) == pytest.approx(30 / 80, abs=0.01)


@pytest.mark.parametrize(
    "spec, request_, message",
    [
        (DENOISE, {"noise_level_hu": 200}, "noise_level_hu must be within 10..80 HU"),
        (DENOISE, {"noise_level_hu": "loud"}, "'noise_level_hu' must be a number"),
        (SUPERRES, {"scale_factor": 3}, "scale_factor must be one of [2, 4]"),
        (SUPERRES, {"scale_factor": 8}, "got 8"),
    ],
)
def test_out_of_range_parameters_are_refused(spec, request_, message):
    with pytest.raises(BadRequest) as err:
        restoration_level(spec, request_)
    assert message in err.value.message and err.value.status_code == 400


def test_parameters_in_range_and_defaults():
    assert restoration_level(DENOISE, {}) == ("noise_level_hu", 40.0)
    assert restoration_level(DENOISE, {"noise_level_hu": "25"}) == ("noise_level_hu", 25.0)
    assert restoration_level(SUPERRES, {"scale_factor": 4}) == ("scale_factor", 4)


def test_spec_rejects_inconsistent_degradations():
    with pytest.raises(ValidationError, match="default_noise_hu"):
        Denoise(min_noise_hu=10, max_noise_hu=20, default_noise_hu=40)
    with pytest.raises(ValidationError, match="default_factor"):
        SuperResolution(factors=(2, 4), default_factor=3)
    with pytest.raises(ValidationError, match="roi_size"):
        RestorationSpec(name="x", degradation=Denoise(), roi_size=(30, 32, 32))


# -- synthesis --------------------------------------------------------------------------------------

from medlabel.kinds.generation.spec import DiffusionNetwork, SynthesisSpec  # noqa: E402
from medlabel.kinds.generation.synthesis import (  # noqa: E402
    build_diffusion_network,
    check_mask,
    diffusion_loss,
    sample,
    slabs,
    to_model_grid,
)

SYNTH = SynthesisSpec(name="liver_synth", labels={"liver": 1, "tumour": 2}, network=DiffusionNetwork(channels=(8, 16)))


def _grid(size=(20, 18, 12), spacing=(1.0, 1.0, 2.5)) -> sitk.Image:
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin((5.0, -3.0, 40.0))
    return image


def test_mask_checks_name_the_problem():
    reference = _grid()
    with pytest.raises(BadRequest, match=r"voxel size \(10, 18, 12\) but image 'ct' has \(20, 18, 12\)"):
        check_mask(_grid((10, 18, 12)), reference, SYNTH, "ct")
    wrong_ids = _grid()
    wrong_ids[3, 3, 3] = 7
    with pytest.raises(BadRequest, match=r"label ids \[7\]"):
        check_mask(wrong_ids, reference, SYNTH, "ct")
    assert check_mask(_grid(), reference, SYNTH, "ct").shape == (12, 18, 20)


def test_model_grid_covers_the_mask_with_whole_network_levels():
    mask = sitk.Paste(_grid(), sitk.Image([4, 4, 2], sitk.sitkUInt8) + 1, [4, 4, 2], [0, 0, 0], [9, 8, 5])
    on_grid, grid = to_model_grid(mask, SYNTH)
    assert all(s % SYNTH.multiple == 0 for s in grid.GetSize()[:2]) and grid.GetSpacing() == SYNTH.spacing_mm
    centre = lambda im: im.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in im.GetSize()])  # noqa: E731
    assert np.allclose(centre(mask), centre(grid))
    assert sitk.GetArrayViewFromImage(on_grid).max() == 1  # the labelled block survives nearest resampling


def test_slabs_give_every_slice_its_neighbours_with_edges_repeated():
    mask = torch.arange(4.0).reshape(1, 1, 4).expand(2, 2, 4)  # slice z holds the value z
    assert slabs(mask, SYNTH)[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_diffusion_training_step_lowers_the_loss_and_sampling_is_seeded():
    torch.manual_seed(0)
    network = build_diffusion_network(SYNTH)
    mask = torch.zeros(1, 1, 16, 16, 6)
    mask[..., 4:12, 4:12, 1:5] = 1
    slab = slabs(mask[0, 0], SYNTH)[1:5]  # (4, 3, 16, 16): four slices' mask slabs
    image = torch.where(slab[:, 1:2] > 0, 0.5, -0.5)
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)

    def loss_at_fixed_noise():
        with torch.no_grad():
            return float(diffusion_loss(network, image, slab, SYNTH, torch.Generator().manual_seed(0)))

    before = loss_at_fixed_noise()
    for i in range(15):
        optimizer.zero_grad()
        diffusion_loss(network, image, slab, SYNTH, torch.Generator().manual_seed(i + 1)).backward()
        optimizer.step()
    assert loss_at_fixed_noise() < before
    a = sample(network, mask, SYNTH, steps=3, seed=5, device=torch.device("cpu"))
    b = sample(network, mask, SYNTH, steps=3, seed=5, device=torch.device("cpu"))
    assert a.shape == (1, 1, 16, 16, 6) and torch.equal(a, b) and float(a.abs().max()) <= 1.0


def test_synthesis_infer_answers_on_the_mask_grid_and_refuses_bad_masks(demo_data, tmp_path):
    from medlabel.continual.store import ModelStore
    from medlabel.kinds.generation.infer import SynthesisInfer
    from medlabel.kinds.generation.synthesis import Synthesizer

    image = str(demo_data / "studies" / "liver-ct" / "lits117_subvolume_x1y1z0.nii.gz")
    mask = str(demo_data / "groundtruth" / "liver-ct" / "lits117_subvolume_x1y1z0.nii.gz")
    task = SynthesisInfer(Synthesizer(ModelStore(tmp_path / "models", SYNTH)), "cpu")
    assert task.info()["type"] == "generation"

    path, params = task({"image": image, "label": mask, "steps": 2, "seed": 3})
    out, ref = sitk.ReadImage(path), sitk.ReadImage(image)
    assert out.GetSize() == ref.GetSize() and np.allclose(out.GetOrigin(), ref.GetOrigin())
    assert np.allclose(out.GetDirection(), ref.GetDirection()) and np.allclose(out.GetSpacing(), ref.GetSpacing())
    assert params["derived_image"]["label"] == mask and params["derived_image"]["info"]["params"] == {"steps": 2, "seed": 3}

    small = tmp_path / "small_mask.nii.gz"
    sitk.WriteImage(sitk.Image([32, 32, 32], sitk.sitkUInt8), str(small))
    with pytest.raises(BadRequest, match=r"voxel size \(32, 32, 32\)"):
        task({"image": image, "label": str(small), "steps": 2})
    with pytest.raises(BadRequest, match="steps must be an integer within 1..200"):
        task({"image": image, "label": mask, "steps": 1000})
    with pytest.raises(BadRequest, match="send the label mask"):
        task({"image": image, "steps": 2})
