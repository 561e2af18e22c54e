"""The detection loop with the Slicer module's own client against a real server on real CT.

Next sample, detect (ROI markups JSON back, as the Slicer module loads it), submit corrected boxes as
the module sends them for every image but the two held-out octants, retraining that the server starts by
itself after the last label, and the new model's FROC on held-out real lesions (octants with no synthetic
copy) clearly above the untrained one's. 89-111 s on a quiet 2-core machine (30 epochs, training 66 s).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests

from medlabel.demo.detection import HELD_OUT, STUDY
from medlabel.kinds.detection.boxes import read_markups
from medlabel.kinds.detection.metrics import ImageDetections, detection_metrics

pytestmark = pytest.mark.system

SLICER_INFER = {"result_extension": ".nrrd", "result_dtype": "uint8"}  # what the module always sends


def held_out_metrics(client, truth) -> dict:
    """Every box the detector keeps (score_threshold 0) on the held-out real octants, scored by FROC."""
    images = []
    for image_id in HELD_OUT:
        result, params = client.infer("liver_lesions", image_id, {**SLICER_INFER, "score_threshold": 0.0})
        assert result.endswith(".json")  # the module loads it with slicer.util.loadMarkups
        boxes = read_markups(result)
        assert np.allclose(boxes, params["boxes_ras_mm"], atol=0.02) and len(params["findings"]) == len(boxes)
        images.append(ImageDetections(boxes, np.array(params["scores"]), read_markups(str(truth / f"{image_id}.json"))))
    return detection_metrics(images)


def test_slicer_detection_loop_learns_lesions(demo_data, start_server, slicer_client_class, tmp_path):
    studies, truth = demo_data / "studies" / STUDY, demo_data / "groundtruth" / STUDY
    # to label: the real training octants and their synthetic copies (real CT with inserted lesions)
    train = sorted(n for p in studies.glob("*.nii.gz") if (n := p.name.removesuffix(".nii.gz")).removeprefix(
        "synthetic_") not in HELD_OUT)
    assert len(train) == 10
    server = start_server("radiology", studies, models="liver_lesions", retrain_after=str(len(train)),
                          max_epochs="30")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test-annotator")

    info = client.info()
    assert info["models"]["liver_lesions"]["type"] == "detection"
    assert info["models"]["liver_lesions_map"]["type"] == "segmentation"  # the labelmap form, for OHIF

    first = client.next_sample("first", {})
    result, params = client.infer("liver_lesions", first["id"], SLICER_INFER)
    doc = json.loads(open(result).read())
    assert doc["@schema"].endswith("markups-schema-v1.0.3.json#")
    assert all(m["type"] == "ROI" and m["coordinateSystem"] == "LPS" for m in doc["markups"])
    assert params["model_version"] == 0 and {"pre", "infer", "total"} <= set(params["latencies"])

    before = held_out_metrics(client, truth)

    # invalid boxes are refused with a reason; nothing is stored
    bad = tmp_path / "bad.json"
    for roi, reason in [({"center": [float("nan"), 0, 0], "size": [5, 5, 5]}, "NaN"),
                        ({"center": [-100, 30, -30], "size": [0, 5, 5]}, "size must be positive"),
                        ({"center": [900, 900, 900], "size": [5, 5, 5]}, "not inside the image")]:
        bad.write_text(json.dumps({"markups": [{"type": "ROI", "coordinateSystem": "LPS", **roi}]}))
        with open(bad, "rb") as f:
            r = requests.put(f"{server.url}/datastore/label", params={"image": train[0], "tag": "final"},
                             files={"label": ("label.json", f)}, data={"params": "{}"}, timeout=30)
        assert r.status_code == 400 and reason in r.json()["detail"], r.text
    assert "final" not in client.datastore()["objects"][train[0]]["labels"]

    # the corrected boxes, submitted as the Slicer module does (a .json of ROI markups, label_info [])
    for image_id in train:
        saved = client.save_label(image_id, str(truth / f"{image_id}.json"), tag="final", params={"label_info": []})
        assert saved["label"] == image_id

    deadline = time.time() + 420  # retraining was queued by the last label (the spec caps it at 4 minutes)
    while True:
        versions = requests.get(f"{server.url}/medlabel/models/liver_lesions/versions", timeout=10).json()["versions"]
        if len(versions) > 1 and not (server.model_dir / "liver_lesions" / "retrain.pending").exists():
            break
        assert time.time() < deadline, "the automatic retraining did not finish in 7 minutes"
        time.sleep(3)
    stats = json.loads((server.model_dir / "liver_lesions" / "train" / "train_stats.json").read_text())
    assert stats["labelled_images"] == len(train) and stats["gate"]["promoted"], stats["gate"]

    after = held_out_metrics(client, truth)
    print(f"held-out real lesions: CPM {before['cpm']:.3f} -> {after['cpm']:.3f}, "
          f"sensitivity at 8 FP/volume {before['sensitivity'][8.0]:.2f} -> {after['sensitivity'][8.0]:.2f}, "
          f"mAP@0.1 {before['map_iou_0.1']:.3f} -> {after['map_iou_0.1']:.3f} ({after['lesions']} lesions)")
    # Clearly above the untrained model, by three measures at once. The trained detector finds 2 to 5 of the
    # 26 real lesions, and which of them depends on the CPU's arithmetic (same seed and data): CPM 0.132 /
    # 5 lesions at 8 FP on session 6's AMD EPYC, 0.082 / 3 on session 7's Intel Xeon (0.055 / 2 with 45
    # epochs, 0.104 / 5 with 60), while the untrained model finds none and scores mAP@0.1 0.02.
    assert after["cpm"] > before["cpm"] + 0.04
    found, found_before = (round(m["sensitivity"][8.0] * after["lesions"]) for m in (after, before))
    assert found >= found_before + 2, (found_before, found)  # lesions found at 8 false positives per volume
    assert after["map_iou_0.1"] > 2 * before["map_iou_0.1"]

    # the labelmap companion draws the served model's boxes on the image's own grid
    result, params = client.infer("liver_lesions_map", HELD_OUT[0], SLICER_INFER)
    assert result.endswith(".nrrd") and params["model_version"] == 1

    picked = client.next_sample("uncertainty", {})
    assert picked["id"] in HELD_OUT  # the only unlabeled images left
