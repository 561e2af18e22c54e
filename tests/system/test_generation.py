"""Restoration through the real server and the Slicer module's client, on held-out real CT.

The held-out octant is never in the studies folder while the models train; it is degraded here (noise,
slice averaging), uploaded, restored by the served models, and measured against its clean original.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
import SimpleITK as sitk
from scipy.ndimage import zoom

pytestmark = pytest.mark.system

HELD_OUT = "lits117_subvolume_x1y1z0"
WINDOW = (-1000.0, 1000.0)  # the models' HU window; PSNR is measured in it, range 1
NOISE_HU = 40.0
SR_GAIN_DB = 0.1  # required gain of super-resolution over the cubic B-spline estimate it starts from


def psnr_db(result: sitk.Image, clean: sitk.Image) -> float:
    """PSNR in the HU window, written out here independently of the library's metric."""
    lo, hi = WINDOW
    a = (np.clip(sitk.GetArrayFromImage(result).astype(np.float64), lo, hi) - lo) / (hi - lo)
    b = (np.clip(sitk.GetArrayFromImage(clean).astype(np.float64), lo, hi) - lo) / (hi - lo)
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def noisy_copy(clean: sitk.Image) -> sitk.Image:
    hu = sitk.GetArrayFromImage(clean).astype(np.float32)
    noisy = hu + np.random.default_rng(7).normal(0, NOISE_HU, hu.shape).astype(np.float32)
    out = sitk.GetImageFromArray(noisy)
    out.CopyInformation(clean)
    return out


def thick_copy(clean: sitk.Image, factor: int) -> sitk.Image:
    """Thick slices: each the mean of ``factor`` thin ones, centred where they were."""
    hu = sitk.GetArrayFromImage(clean).astype(np.float32)  # (K, J, I)
    thick = hu.reshape(hu.shape[0] // factor, factor, *hu.shape[1:]).mean(1)
    out = sitk.GetImageFromArray(thick)
    spacing = np.array(clean.GetSpacing())
    direction = np.array(clean.GetDirection()).reshape(3, 3)
    out.SetSpacing(tuple(spacing * [1, 1, factor]))
    out.SetDirection(clean.GetDirection())
    out.SetOrigin(tuple(np.array(clean.GetOrigin()) + direction[:, 2] * spacing[2] * (factor - 1) / 2))
    return out


def trilinear_baseline(thick: sitk.Image, clean: sitk.Image) -> sitk.Image:
    """The thick volume linearly interpolated onto the clean grid (edges clamped), as a radiologist's viewer would."""
    return sitk.Resample(thick, clean, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32, True)


def cubic_baseline(thick: sitk.Image, clean: sitk.Image, factor: int) -> sitk.Image:
    """Cubic B-spline interpolation along the slices (edges clamped): the estimate the model starts from.

    ``grid_mode`` scales voxel edges, so each thick slice lands at the centre of the thin ones it averaged.
    (SimpleITK's ``sitkBSpline`` resampling, with its own edge handling, reads 0.3 dB lower on this octant.)
    """
    hu = sitk.GetArrayFromImage(thick).astype(np.float32)  # (K, J, I)
    out = sitk.GetImageFromArray(zoom(hu, (factor, 1, 1), order=3, mode="nearest", grid_mode=True).astype(np.float32))
    out.CopyInformation(clean)
    return out


def test_restoration_models_learn_from_the_studies_and_beat_the_baselines(
        demo_data, start_server, slicer_client_class, tmp_path, wait_for_training):
    studies = tmp_path / "studies"
    shutil.copytree(demo_data / "studies" / "liver-ct", studies)
    held_out_file = studies / f"{HELD_OUT}.nii.gz"
    clean = sitk.ReadImage(str(held_out_file))
    held_out_file.unlink()  # never seen in training

    server = start_server("generation", studies, wait=False, models="ct_denoise,ct_superres", retrain_after="0")
    server.wait_ready(timeout=600)  # generous for a loaded machine; about 10 s on a quiet one
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test")

    info = client.info()
    assert info["models"]["ct_denoise"]["type"] == info["models"]["ct_superres"]["type"] == "generation"
    assert info["models"]["ct_superres"]["config"]["scale_factor"] == 2

    # out-of-range parameters: 400 naming the rule, nothing stored
    image_id = sorted(client.datastore()["objects"])[0]
    for model, params, words in (("ct_denoise", {"noise_level_hu": 500}, "noise_level_hu must be within 10..80"),
                                 ("ct_superres", {"scale_factor": 3}, "scale_factor must be one of [2, 4]")):
        r = requests.post(f"{server.url}/infer/{model}", params={"image": image_id},
                          files={"params": (None, json.dumps(params))})
        assert r.status_code == 400 and words in r.json()["detail"], r.text
    assert len(client.datastore()["objects"]) == 7

    seen = None
    # steps of 4 crops (60 and 400): about 0.2 s each on a quiet 2-core machine; slice detail is slower to learn
    # (with 320 steps the held-out x2 gain was +0.30 dB, with 90 steps +0.0 dB)
    for model, epochs, steps in (("ct_denoise", 2, 30), ("ct_superres", 10, 40)):
        client.train_start(model, {"max_epochs": epochs, "iterations_per_epoch": steps})
        status = wait_for_training(client, timeout=900, seen_id=seen)
        seen = status["id"]
        assert status["status"] == "DONE", status
        stats = json.loads((server.model_dir / model / "train" / "train_stats.json").read_text())
        assert stats["gate"]["promoted"], stats["gate"]  # validation PSNR at least the untrained (= baseline) model's
        print(model, "validation", {k: round(v, 3) for k, v in stats["candidate"].items() if isinstance(v, float)})

    # denoising: a held-out octant with 40 HU of added noise
    sitk.WriteImage(noisy_copy(clean), str(tmp_path / "noisy.nii.gz"))
    client.upload_image(str(tmp_path / "noisy.nii.gz"), "heldout_noisy")
    result, params = client.infer("ct_denoise", "heldout_noisy", {"noise_level_hu": NOISE_HU})
    restored, noisy = sitk.ReadImage(result), sitk.ReadImage(str(tmp_path / "noisy.nii.gz"))
    assert restored.GetSize() == clean.GetSize() and np.allclose(restored.GetOrigin(), clean.GetOrigin())
    before, after = psnr_db(noisy, clean), psnr_db(restored, clean)
    print(f"denoising PSNR noisy {before:.2f} dB -> restored {after:.2f} dB")
    assert after > before + 1.0

    # provenance: the restored image is a new datastore image
    derived = params["derived_image"]
    assert derived["stored"] and derived["id"] == "heldout_noisy_ct_denoise_v1_n40"
    generated = client.datastore()["objects"][derived["id"]]["image"]["info"]["generated"]
    assert generated["source_image"] == "heldout_noisy" and generated["model_version"] == 1
    assert generated["params"] == {"noise_level_hu": NOISE_HU}

    # super-resolution: 2 mm slices back to 1 mm, on exactly the clean grid
    thick = thick_copy(clean, 2)
    sitk.WriteImage(thick, str(tmp_path / "thick.nii.gz"))
    client.upload_image(str(tmp_path / "thick.nii.gz"), "heldout_thick")
    result, params = client.infer("ct_superres", "heldout_thick", {"scale_factor": 2})
    thin = sitk.ReadImage(result)
    assert thin.GetSize() == clean.GetSize()
    assert np.allclose(thin.GetOrigin(), clean.GetOrigin(), atol=1e-4)
    assert np.allclose(thin.GetSpacing(), clean.GetSpacing(), atol=1e-6)
    linear, cubic = psnr_db(trilinear_baseline(thick, clean), clean), psnr_db(cubic_baseline(thick, clean, 2), clean)
    restored_db = psnr_db(thin, clean)
    print(f"super-resolution x2 PSNR trilinear {linear:.2f} dB, cubic {cubic:.2f} dB -> restored {restored_db:.2f} dB")
    assert restored_db > cubic + SR_GAIN_DB
    assert params["derived_image"]["id"] == "heldout_thick_ct_superres_v1_x2"


def test_synthesis_sample_lies_on_its_mask_grid_and_is_kept_as_a_training_pair(
        demo_data, start_server, slicer_client_class, tmp_path):
    """A sample conditioned on a real liver mask, through the server: the image comes back on exactly the
    mask's grid, and the datastore keeps it with the mask as its final label (a synthetic training pair).

    The model is the untrained version 0: this checks the geometry and provenance the issue asks for;
    sample quality is measured by ``bench/generation.py``.
    """
    server = start_server("generation", demo_data / "studies" / "liver-ct", models="liver_synth")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test")
    assert client.info()["models"]["liver_synth"]["type"] == "generation"

    image_id = "lits117_subvolume_x0y1z0"
    mask_path = demo_data / "groundtruth" / "liver-ct" / f"{image_id}.nii.gz"
    mask = sitk.ReadImage(str(mask_path))
    assert set(np.unique(sitk.GetArrayFromImage(mask))) >= {0, 1}  # a real liver mask, not an empty one

    result, params = client.infer("liver_synth", image_id, {"steps": 2, "seed": 3}, label_in=str(mask_path))
    sample = sitk.ReadImage(result)
    assert sample.GetSize() == mask.GetSize()
    assert np.allclose(sample.GetOrigin(), mask.GetOrigin(), atol=1e-4)
    assert np.allclose(sample.GetSpacing(), mask.GetSpacing(), atol=1e-6)
    assert np.allclose(sample.GetDirection(), mask.GetDirection(), atol=1e-6)
    values = sitk.GetArrayFromImage(sample)
    assert np.all(np.isfinite(values)) and values.std() > 0  # an image, not a constant fill

    derived = params["derived_image"]
    assert derived["stored"] and derived["id"] == f"{image_id}_liver_synth_v0_s3_t2"
    entry = client.datastore()["objects"][derived["id"]]
    assert entry["image"]["info"]["generated"]["params"] == {"steps": 2, "seed": 3}
    assert "final" in entry["labels"]
    [stored_label] = (Path(server.studies) / "labels" / "final").glob(f"{derived['id']}.*")
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(stored_label))), sitk.GetArrayFromImage(mask))

    # a mask drawn on another grid: 400 naming both sizes, nothing stored
    small = tmp_path / "small_mask.nii.gz"
    sitk.WriteImage(sitk.Image([32, 32, 32], sitk.sitkUInt8), str(small))
    before = len(client.datastore()["objects"])
    r = requests.post(f"{server.url}/infer/liver_synth", params={"image": image_id},
                      files={"params": (None, json.dumps({"steps": 2})), "label": open(small, "rb")})
    assert r.status_code == 400 and "voxel size (32, 32, 32)" in r.json()["detail"], r.text
    assert len(client.datastore()["objects"]) == before
