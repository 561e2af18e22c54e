"""The foundation loop with the Slicer module's own client against a real server on real CT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytestmark = pytest.mark.system

# The validation image is the labelled one whose id hashes lowest (x0y0z0 here: a quarter of it is liver);
# the held-out images are never labelled.
TRAIN = ["lits117_subvolume_x0y0z0", "lits117_subvolume_x1y0z0", "lits117_subvolume_x0y1z0", "lits117_subvolume_x0y0z1"]
HELD_OUT = ["lits117_subvolume_x1y1z0", "lits117_subvolume_x1y0z1"]


def same_grid(result: str, image: Path) -> bool:
    a, b = sitk.ReadImage(result), sitk.ReadImage(str(image))
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-4)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4)
    )


def test_slicer_client_loop_learns_liver(demo_data, start_server, slicer_client_class, tmp_path, liver_dice,
                                         wait_for_training):
    studies, truth = demo_data / "studies" / "liver-ct", demo_data / "groundtruth" / "liver-ct"
    server = start_server("radiology", studies, models="liver_ct", retrain_after="0")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test-annotator")

    info = client.info()
    assert isinstance(info["labels"], list) and {"liver", "tumour"} <= set(info["labels"])
    assert info["models"]["liver_ct"]["type"] == "segmentation"

    first = client.next_sample("first", {})
    assert first["id"] == sorted(p.name.removesuffix(".nii.gz") for p in studies.glob("*.nii.gz"))[0]

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

    client.train_start("liver_ct", {"max_epochs": 12, "iterations_per_epoch": 20})
    status = wait_for_training(client)
    assert status["status"] == "DONE", status
    stats = json.loads((server.model_dir / "liver_ct" / "train" / "train_stats.json").read_text())
    assert stats["version"] == 1 and stats["labelled_images"] == 4 and stats["gate"]["promoted"], stats["gate"]
    assert {"val_dice_liver", "val_dice_tumour"} <= set(stats["eval"]["metrics"])  # validation Dice per label

    after = {i: infer_dice(i) for i in HELD_OUT}
    print(f"held-out liver Dice before {before} after {after}")
    # the untrained model already overlaps these liver-rich octants by chance (Dice about 0.67)
    assert np.mean(list(after.values())) > np.mean(list(before.values())) + 0.1
    assert min(after.values()) > 0.78

    # the strategy now ranks the remaining unlabeled images under the trained model
    picked = client.next_sample("uncertainty", {})
    assert picked["id"] not in TRAIN and picked["uncertainty_liver_ct"]["version"] == 1
    objects = client.datastore()["objects"]
    scores = {i: o["image"]["info"]["uncertainty_liver_ct"]["score"] for i, o in objects.items() if i not in TRAIN}
    assert len(scores) == 4 and picked["id"] == max(scores, key=scores.get)  # the top one, not one past top-k
    assert len(set(scores.values())) == 4  # real, distinct scores
