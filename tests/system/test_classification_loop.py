"""The classification loop with the Slicer module's own client against a real server on real CT tiles.

Next sample (uncertainty and core-set), classify (probabilities and a Grad-CAM map on the tile's own
grid), submit the correct classes as JSON labels, retrain, and the held-out AUROC rises clearly.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import requests
import SimpleITK as sitk

from medlabel.kinds.classification.metrics import auroc_per_class

pytestmark = pytest.mark.system
CLASSES = ("liver", "tumour")


def test_slicer_client_classifies_explains_and_learns(demo_data, start_server, slicer_client_class, tmp_path,
                                                      wait_for_training, same_grid):
    studies = demo_data / "studies" / "liver-tiles"
    truth = json.loads((demo_data / "groundtruth" / "liver-tiles" / "labels.json").read_text())
    # every other tile of each split (32 + 32), so scoring and training stay short on a 2-core CPU
    train = sorted(i for i, t in truth.items() if t["split"] == "train")[::2]
    held_out = sorted(i for i, t in truth.items() if t["split"] == "heldout")[::2]
    clock, t0 = {}, time.time()  # seconds per step, printed: where the time goes if this ever runs long

    def lap(step: str) -> None:
        clock[step] = round(time.time() - t0 - sum(clock.values()), 1)
        print(f"{step}: {clock[step]} s", flush=True)

    subset = tmp_path / "liver-tiles"
    subset.mkdir()
    for i in train + held_out:
        shutil.copy(studies / f"{i}.nii.gz", subset)
    studies = subset
    server = start_server("classification", studies, models="liver_tiles", retrain_after="0")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test-annotator")
    lap("server start")

    info = client.info()
    assert info["models"]["liver_tiles"]["type"] == "classification"
    assert set(CLASSES) <= set(info["labels"])
    assert {"entropy", "margin", "bald", "coreset"} <= set(info["strategies"])

    # next sample: every strategy names an unlabeled tile with its score
    for strategy in ("entropy", "margin", "bald"):
        picked = client.next_sample(strategy, {})
        assert picked["id"] in truth and 0.0 <= picked[strategy] <= 1.0
    picked = client.next_sample("coreset", {})
    assert picked["id"] in truth and picked["distance"] > 0
    lap("next sample (scores 64 tiles)")

    # classify with an explanation map: probabilities as JSON, the map on the tile's own grid
    image_id = held_out[0]
    result, params = client.infer("liver_tiles", image_id, {"result_extension": ".nrrd"})
    assert set(params["classes"]) == set(CLASSES) and all(0 <= p <= 1 for p in params["classes"].values())
    assert same_grid(result, studies / f"{image_id}.nii.gz")
    cam = sitk.GetArrayFromImage(sitk.ReadImage(result))
    assert cam.dtype == np.float32 and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert params["explanation"]["method"] == "gradcam"
    listed = client.datastore()["objects"][image_id]["image"]["info"]["last_prediction"]
    assert listed["classes"] == params["classes"] and listed["model_version"] == 0

    def held_out_auroc() -> list[float]:
        """Probabilities only (REST, ``output=json``: the Slicer client expects a file in every answer)."""
        prob, target = [], []
        for i in held_out:
            answer = requests.post(f"{server.url}/infer/liver_tiles", params={"image": i, "output": "json"},
                                   data={"params": json.dumps({"explain": False})}, timeout=60)
            assert answer.status_code == 200, answer.text
            p = answer.json()
            prob.append([p["classes"][c] for c in CLASSES])
            target.append([float(c in truth[i]["classes"]) for c in CLASSES])
        return auroc_per_class(np.array(prob), np.array(target))

    before = held_out_auroc()
    lap("classify with map, then 32 held-out tiles")

    # an unknown class name is refused with a message naming it; nothing is stored
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"classes": ["tumor"]}))
    answer = requests.put(f"{server.url}/datastore/label", params={"image": train[0], "tag": "final"},
                          files={"label": ("label.json", bad.read_bytes())}, data={"params": "{}"}, timeout=30)
    assert answer.status_code == 400 and "tumor" in answer.json()["detail"] and "tumour" in answer.json()["detail"]
    assert "final" not in client.datastore()["objects"][train[0]]["labels"]

    for i in train:
        label = tmp_path / f"{i}.json"
        label.write_text(json.dumps({"classes": truth[i]["classes"]}))
        assert client.save_label(i, str(label), tag="final", params={"model": "liver_tiles"})["label"] == i
    stored = client.datastore()["objects"][train[0]]["labels"]["final"]
    assert stored["ext"] == ".json" and stored["info"]["model"] == "liver_tiles"

    lap("32 labels stored, one refused")

    # 4 epochs of 20 batches of 16 (16 to 21 s on 2 cores, measured); the cap ends a run on a loaded machine early
    client.train_start("liver_tiles", {"max_epochs": 4, "iterations_per_epoch": 20, "max_minutes": 3})
    status = wait_for_training(client, timeout=360)
    assert status["status"] == "DONE", status
    lap("training (subprocess start, 4 epochs, gate)")
    stats = json.loads((server.model_dir / "liver_tiles" / "train" / "train_stats.json").read_text())
    assert stats["version"] == 1 and stats["gate"]["promoted"], stats["gate"]
    assert {"auroc", "accuracy", "ece"} <= set(stats["candidate"])

    after = held_out_auroc()
    print(f"held-out AUROC (liver, tumour) before {before} after {after}; train s {stats.get('total_time')}")
    assert np.mean(after) > np.mean(before) + 0.15
    assert min(after) > 0.8
    lap("32 held-out tiles")

    # the strategies now rank under the new version
    picked = client.next_sample("bald", {})
    assert picked["id"] in held_out
    assert client.datastore()["objects"][picked["id"]]["image"]["info"]["uncertainty_liver_tiles"]["version"] == 1
    lap("next sample under version 1")
    print(f"total {sum(clock.values()):.0f} s; training {stats.get('total_time')}, val curve {stats.get('val_curve')}")


def test_volume_and_radiograph_models_classify_through_the_server(demo_data, start_server, slicer_client_class,
                                                                  tmp_path, same_grid):
    """The 3D cube model and the 2D body-part model served side by side: each answers probabilities and a map
    on its input's own grid (a 24^3 CT cube; a real chest radiograph), and a volume sent to the 2D model is
    refused with a message that says why."""
    cubes, body = demo_data / "studies" / "liver-cubes", demo_data / "studies" / "body-part"
    cube_truth = json.loads((demo_data / "groundtruth" / "liver-cubes" / "labels.json").read_text())
    studies = tmp_path / "mixed"
    studies.mkdir()
    cube = sorted(i for i, t in cube_truth.items() if t["split"] == "heldout" and "tumour" in t["classes"])[0]
    shutil.copy(cubes / f"{cube}.nii.gz", studies)
    shutil.copy(body / "dicom_RG1_UNCI.nii.gz", studies)
    server = start_server("classification", studies, models="liver_cubes,body_part", retrain_after="0")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test-annotator")
    models = client.info()["models"]
    assert models["liver_cubes"]["type"] == models["body_part"]["type"] == "classification"

    result, params = client.infer("liver_cubes", cube, {"result_extension": ".nrrd"})
    assert set(params["classes"]) == {"liver", "tumour"} and params["explanation"]["method"] == "gradcam"
    assert same_grid(result, studies / f"{cube}.nii.gz") and sitk.ReadImage(result).GetSize() == (24, 24, 24)

    result, params = client.infer("body_part", "dicom_RG1_UNCI", {"result_extension": ".nrrd"})
    assert set(params["classes"]) == {"head", "trunk"}
    assert abs(sum(params["classes"].values()) - 1) < 1e-4 and params["predicted"] in (["head"], ["trunk"])
    assert same_grid(result, studies / "dicom_RG1_UNCI.nii.gz")

    answer = requests.post(f"{server.url}/infer/body_part", params={"image": cube, "output": "json"}, timeout=60)
    assert 400 <= answer.status_code < 500 and "2D model cannot classify" in answer.text, answer.text
    assert requests.get(f"{server.url}/info/", timeout=10).status_code == 200  # still serving
