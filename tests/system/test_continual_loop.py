"""The foundation loop and continual learning with the Slicer module's client, on real CT: info, next
sample, infer on the image's grid, labels, retraining that fires by itself, held-out Dice that rises, the
uncertainty strategy under the new model, label history, gated promotion (a bad training is not
promoted), versions and rollback, and restart safety. One test holds the whole loop so that its first,
expensive training round is paid once."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import requests
import SimpleITK as sitk
import torch

from medlabel.continual.training import split_by_id

pytestmark = pytest.mark.system

# The validation image is the labelled one whose id hashes lowest (x0y0z0 here: a quarter of it is liver);
# the held-out images are never labelled.
TRAIN = ["lits117_subvolume_x0y0z0", "lits117_subvolume_x1y0z0", "lits117_subvolume_x0y1z0", "lits117_subvolume_x0y0z1"]
HELD_OUT = ["lits117_subvolume_x1y1z0", "lits117_subvolume_x1y0z1"]
LABEL_INFO = {"label_info": [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]}


def versions(url: str, name: str = "liver_ct") -> dict:
    r = requests.get(f"{url}/medlabel/models/{name}/versions", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_labels_flow_back_and_the_model_improves_only_when_validation_agrees(
    demo_data, start_server, slicer_client_class, tmp_path, liver_dice, wait_for_training, same_grid
):
    studies, truth = demo_data / "studies" / "liver-ct", demo_data / "groundtruth" / "liver-ct"
    server = start_server("radiology", studies, models="liver_ct", retrain_after="4", max_epochs="12")
    annotator = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="annotator-a")
    second = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="annotator-b")

    def held_out_dice() -> list[float]:
        return [liver_dice(annotator.infer("liver_ct", i, {"result_extension": ".nrrd"})[0], truth / f"{i}.nii.gz")
                for i in HELD_OUT]

    info = annotator.info()
    assert isinstance(info["labels"], list) and {"liver", "tumour"} <= set(info["labels"])
    assert info["models"]["liver_ct"]["type"] == "segmentation"
    first = annotator.next_sample("first", {})
    assert first["id"] == sorted(p.name.removesuffix(".nii.gz") for p in studies.glob("*.nii.gz"))[0]

    # the result as Slicer loads it: uint8 NRRD on the image's own grid, with the stage latencies
    result, params = annotator.infer("liver_ct", HELD_OUT[0], {"result_extension": ".nrrd", "result_dtype": "uint8"})
    assert result.endswith(".nrrd") and sitk.ReadImage(result).GetPixelID() == sitk.sitkUInt8
    assert same_grid(result, studies / f"{HELD_OUT[0]}.nii.gz")
    assert set(params["latencies"]) >= {"pre", "infer", "restore", "write", "total"}

    before = held_out_dice()
    assert versions(server.url)["serving"] == 0

    # round 1: the annotator corrects predictions; the 4th final label queues training by itself
    answers = []
    for image_id in TRAIN:
        annotator.infer("liver_ct", image_id, {})  # the prediction the label corrects
        answers.append(annotator.save_label(image_id, str(truth / f"{image_id}.nii.gz"), "final", LABEL_INFO))
    assert [a["retrain"] for a in answers] == ["1/4 new labels", "2/4 new labels", "3/4 new labels", "queued"]
    assert annotator.datastore()["objects"][TRAIN[0]]["labels"]["final"]["info"]["label_info"] == \
        LABEL_INFO["label_info"]
    status = wait_for_training(annotator)
    assert status["status"] == "DONE", status
    stats = json.loads((server.model_dir / "liver_ct" / "train" / "train_stats.json").read_text())
    assert stats["version"] == 1 and stats["labelled_images"] == 4 and stats["gate"]["promoted"], stats["gate"]
    assert {"val_dice_liver", "val_dice_tumour"} <= set(stats["eval"]["metrics"])  # validation Dice per label
    v = versions(server.url)
    assert v["serving"] == 1, v
    record = v["versions"][1]
    assert record["parent"] == 0 and record["labelled_images"] == 4 and record["metrics"]["gate_images"] >= 1
    after = held_out_dice()
    print(f"held-out liver Dice: untrained {before}, version 1 {after}")
    # the untrained model already overlaps these liver-rich octants by chance (Dice about 0.67)
    assert np.mean(after) > np.mean(before) + 0.1 and min(after) > 0.78
    info = annotator.info()
    assert info["models"]["liver_ct"]["version"] == 1 and info["continual"]["retrain_after"] == 4

    # the strategy now ranks the remaining unlabeled images under the trained model
    picked = annotator.next_sample("uncertainty", {})
    assert picked["id"] not in TRAIN and picked["uncertainty_liver_ct"]["version"] == 1
    objects = annotator.datastore()["objects"]
    scores = {i: o["image"]["info"]["uncertainty_liver_ct"]["score"] for i, o in objects.items() if i not in TRAIN}
    assert len(scores) == 4 and picked["id"] == max(scores, key=scores.get)  # the top one, not one past top-k
    assert len(set(scores.values())) == 4  # real, distinct scores

    # label history: a second annotator's label is a new version; the first stays retrievable
    image_id = TRAIN[1]  # a training-split image (TRAIN[0] is the validation image)
    first_bytes = (truth / f"{image_id}.nii.gz").read_bytes()
    second.infer("liver_ct", image_id, {})
    empty = tmp_path / "empty.nii.gz"
    reference = sitk.ReadImage(str(truth / f"{image_id}.nii.gz"))
    blank = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    blank.CopyInformation(reference)
    sitk.WriteImage(blank, str(empty))
    second.save_label(image_id, str(empty), "final", LABEL_INFO)
    history = requests.get(f"{server.url}/medlabel/labels/{image_id}/versions", timeout=10).json()["versions"]
    assert [(h["version"], h["submitted_by"]) for h in history] == [(1, "annotator-a"), (2, "annotator-b")]
    assert history[0]["model_version"] == 0 and history[1]["model_version"] == 1  # the predictions they corrected
    v1 = requests.get(f"{server.url}/medlabel/labels/{image_id}/versions/1", timeout=10)
    assert hashlib.sha256(v1.content).digest() == hashlib.sha256(first_bytes).digest()

    # round 2, deliberately bad: all-background labels on the training split (validation keeps real labels)
    items = [{"image": f"{i}.nii.gz"} for i in TRAIN]
    train_split, val_split = split_by_id(items, 0.25)
    bad = [d["image"].removesuffix(".nii.gz") for d in train_split]
    assert len(bad) == 3  # with annotator-b's label: 4 new final labels, the retrain threshold
    previous = annotator.train_status()["id"]
    for other in bad:
        annotator.save_label(other, str(empty), "final", LABEL_INFO)
    status = wait_for_training(annotator, seen_id=previous)
    assert status["status"] == "DONE", status
    v = versions(server.url)
    assert v["serving"] == 1 and v["versions"][2]["status"] == "rejected", v
    assert v["versions"][2]["metrics"]["gate_candidate"] < v["versions"][2]["metrics"]["gate_serving"]
    assert held_out_dice() == pytest.approx(after, abs=1e-6)  # the serving model did not change

    # rollback: to the initial weights and back, through the documented route
    r = requests.post(f"{server.url}/medlabel/models/liver_ct/rollback", params={"version": 0}, timeout=10)
    assert r.status_code == 200 and r.json()["serving"] == 0
    assert held_out_dice() == pytest.approx(before, abs=1e-6)
    requests.post(f"{server.url}/medlabel/models/liver_ct/rollback", params={"version": 1}, timeout=10)
    assert held_out_dice() == pytest.approx(after, abs=1e-6)
    r = requests.post(f"{server.url}/medlabel/models/liver_ct/rollback", params={"version": 42}, timeout=10)
    assert r.status_code == 404 and "no version 42" in r.json()["detail"]


def test_killed_during_training_restarts_consistent_and_trains_again(
    demo_data, start_server, slicer_client_class, tmp_path, wait_for_training
):
    truth = demo_data / "groundtruth" / "liver-ct"
    server = start_server("radiology", demo_data / "studies" / "liver-ct", models="liver_ct", retrain_after="2",
                          max_epochs="500")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="a")
    for image_id in TRAIN[:2]:
        client.save_label(image_id, str(truth / f"{image_id}.nii.gz"), "final", LABEL_INFO)
    store = server.model_dir / "liver_ct"
    serving_before = (store / "serving.pt").read_bytes()
    registry_before = (store / "registry.json").read_text()
    for _ in range(120):
        if client.train_status().get("status") == "RUNNING" and (store / "train").exists():
            break
        time.sleep(1)
    time.sleep(8)  # well inside the 500 epochs
    server.kill()

    assert (store / "serving.pt").read_bytes() == serving_before
    assert torch.load(store / "serving.pt", weights_only=True)["info"]["version"] == 0
    assert (store / "registry.json").read_text() == registry_before
    assert (store / "retrain.pending").exists()
    history = server.studies / ".medlabel" / "label-history"
    assert sorted(p.name for p in history.iterdir()) == sorted(TRAIN[:2])

    restarted = start_server("radiology", server.studies, reuse=True, models="liver_ct", retrain_after="2",
                             max_epochs="2")
    again = slicer_client_class.MONAILabelClient(restarted.url, tmpdir=str(tmp_path), client_id="a")
    status = wait_for_training(again)  # queued again by itself at start
    assert status["status"] == "DONE", status
    assert not (store / "retrain.pending").exists()
    assert len(versions(restarted.url)["versions"]) == 2
    assert len(again.datastore()["objects"][TRAIN[0]]["labels"]) == 1


def test_client_training_requests_queue_behind_a_running_training_instead_of_failing(
    demo_data, start_server, slicer_client_class, tmp_path, wait_for_training
):
    """Slicer's "train on save" and OHIF's "Update Model" while a training runs: one more is queued, never two."""
    studies, truth = demo_data / "studies" / "liver-ct", demo_data / "groundtruth" / "liver-ct"
    server = start_server("radiology", studies, models="liver_ct", retrain_after="0", max_epochs="1")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="annotator-a")
    for image_id in TRAIN[:2]:
        assert client.save_label(image_id, str(truth / f"{image_id}.nii.gz"), "final", LABEL_INFO)["retrain"] == "disabled"
    quick = {"iterations_per_epoch": 2}
    first = client.train_start("liver_ct", quick)
    _wait_until_running(server.url, first["id"])  # a request made while it still waits joins it instead
    second = client.train_start("liver_ct", quick)  # monailabel alone answers 429 here
    third = client.train_start("liver_ct", quick)
    assert second["id"] != first["id"] and third["id"] == second["id"] and "already queued" in third["detail"]
    wait_for_training(client, seen_id=first["id"], timeout=600)
    runs = requests.get(f"{server.url}/train/", params={"all": "true"}, timeout=10).json()
    assert [r["id"] for r in runs] == [first["id"], second["id"]]
    assert [r["status"] for r in runs] == ["DONE", "DONE"], runs
    assert len(versions(server.url)["versions"]) == 3  # the initial weights and one version per training


def _wait_until_running(url: str, task_id: str, timeout: float = 120) -> None:
    """Blocks until monailabel's worker has picked up training ``task_id``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = requests.get(f"{url}/train/", params={"all": "true"}, timeout=10).json()
        if any(r["id"] == task_id and r["status"] != "SUBMITTED" for r in runs):
            return
        time.sleep(0.2)
    raise TimeoutError(f"training {task_id} never started")
