"""The foundation loop with the Slicer module's own client against a real server on real CT."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytestmark = pytest.mark.system

TRAIN = ["lits117_subvolume_x1y0z0", "lits117_subvolume_x0y1z0", "lits117_subvolume_x1y0z1", "lits117_subvolume_x1y1z1"]
HELD_OUT = ["lits117_subvolume_x0y0z0", "lits117_subvolume_x1y1z0"]


def liver_dice(result: str, truth: Path) -> float:
    """Dice of the whole liver (liver and tumour ids) between a result file and the ground truth."""
    pred = sitk.GetArrayFromImage(sitk.ReadImage(result)) >= 1
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(truth))) >= 1
    return float(2 * (pred & ref).sum() / max(1, pred.sum() + ref.sum()))


def same_grid(result: str, image: Path) -> bool:
    a, b = sitk.ReadImage(result), sitk.ReadImage(str(image))
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-4)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4)
    )


def wait_for_training(client, timeout: float = 900) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.train_status()
        if status.get("status") not in ("SUBMITTED", "QUEUED", "RUNNING"):
            return status
        time.sleep(2)
    raise TimeoutError("training did not finish")


def test_slicer_client_loop_learns_liver(demo_data, start_server, slicer_client_class, tmp_path):
    studies, truth = demo_data / "studies" / "liver-ct", demo_data / "groundtruth" / "liver-ct"
    server = start_server("radiology", studies, models="liver_ct")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test-annotator")

    info = client.info()
    assert isinstance(info["labels"], list) and {"liver", "tumour"} <= set(info["labels"])
    assert info["models"]["liver_ct"]["type"] == "segmentation"

    first = client.next_sample("first", {})
    assert first["id"] == sorted(TRAIN + HELD_OUT + ["lits117_subvolume_x0y0z1", "lits117_subvolume_x0y1z1"])[0]

    def infer_dice(image_id: str) -> float:
        result, params = client.infer("liver_ct", image_id, {"result_extension": ".nrrd", "result_dtype": "uint8"})
        assert result.endswith(".nrrd")
        assert sitk.ReadImage(result).GetPixelID() == sitk.sitkUInt8
        assert same_grid(result, studies / f"{image_id}.nii.gz")
        assert set(params["latencies"]) >= {"pre", "infer", "restore", "write", "total"}
        return liver_dice(result, truth / f"{image_id}.nii.gz")

    before = {i: infer_dice(i) for i in HELD_OUT}

    label_info = [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]
    for image_id in TRAIN:
        saved = client.save_label(image_id, str(truth / f"{image_id}.nii.gz"), tag="final",
                                  params={"label_info": label_info})
        assert saved["label"] == image_id
    assert client.datastore()["objects"][TRAIN[0]]["labels"]["final"]["info"]["label_info"] == label_info

    client.train_start("liver_ct", {"max_epochs": 30})
    status = wait_for_training(client)
    assert status["status"] == "DONE", status
    stats = json.loads((server.model_dir / "liver_ct" / "train" / "train_stats.json").read_text())
    assert stats["version"] == 1 and stats["labelled_images"] == 4
    assert {"val_dice_liver", "val_dice_tumour"} <= set(stats["eval"]["metrics"])  # validation Dice per label

    after = {i: infer_dice(i) for i in HELD_OUT}
    print(f"held-out liver Dice before {before} after {after}")
    assert np.mean(list(after.values())) > np.mean(list(before.values())) + 0.25
    assert min(after.values()) > 0.6

    # the strategy now ranks the remaining unlabeled images under the trained model
    picked = client.next_sample("uncertainty", {})
    assert picked["id"] not in TRAIN and picked["uncertainty_liver_ct"]["version"] == 1
