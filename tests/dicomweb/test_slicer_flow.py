"""The 3D Slicer module's own client through its whole flow, on a local and on a DICOMweb (Orthanc) datastore."""

from __future__ import annotations

import time
from pathlib import Path

import nrrd
import numpy as np
import pytest
import requests
import SimpleITK as sitk

pytestmark = pytest.mark.system

LABEL_INFO = {"label_info": [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]}


def write_slicer_segmentation(truth: sitk.Image, path: Path) -> None:
    """A ``.seg.nrrd`` as Slicer saves one with overlapping segments: two layers, cropped to the segments'
    extent, Slicer's ``background`` segment, and the liver segment covering the tumour."""
    labels = sitk.GetArrayFromImage(truth).transpose(2, 1, 0)  # (i, j, k)
    lo = np.argwhere(labels > 0).min(axis=0)
    hi = np.argwhere(labels > 0).max(axis=0) + 1
    crop = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    layers = np.zeros((2, *crop.shape), np.uint8)
    layers[0][crop >= 1] = 2  # liver (value 2 in layer 0), overlapping the tumour
    layers[0][0, 0, 0] = 1 if crop[0, 0, 0] == 0 else layers[0][0, 0, 0]  # a voxel of Slicer's "background"
    layers[1][crop == 2] = 1  # tumour (value 1 in layer 1)
    axes = np.array(truth.GetDirection()).reshape(3, 3) * np.array(truth.GetSpacing())
    origin = np.array(truth.GetOrigin()) + axes @ lo
    header = {
        "type": "unsigned char", "dimension": 4, "space": "left-posterior-superior",
        "kinds": ["list", "domain", "domain", "domain"], "encoding": "gzip",
        "space directions": np.vstack([np.full(3, np.nan), axes.T]), "space origin": origin,
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ReferenceImageExtentOffset": " ".join(map(str, lo)),
    }
    segments = [("Segment_1", "background", 0, 1), ("Segment_2", "liver", 0, 2), ("Segment_3", "tumour", 1, 1)]
    for n, (sid, name, layer, value) in enumerate(segments):
        header.update({f"Segment{n}_ID": sid, f"Segment{n}_Name": name, f"Segment{n}_Layer": str(layer),
                       f"Segment{n}_LabelValue": str(value), f"Segment{n}_Color": "0.5 0.5 0.5"})
    nrrd.write(str(path), layers, header)


def stored_final(server, image_id: str) -> np.ndarray:
    """The final label the server keeps for an image (what training reads), via GET /datastore/?output=train."""
    pairs = requests.get(f"{server.url}/datastore/", params={"output": "train"}, timeout=120).json()
    [label] = [p["label"] for p in pairs if Path(p["image"]).name.removesuffix(".nii.gz") == image_id]
    return sitk.GetArrayFromImage(sitk.ReadImage(label))


@pytest.mark.parametrize("store", ["local", "dicomweb"])
def test_slicer_flow(store, request, start_server, slicer_client_class, demo_data, tmp_path):
    studies, truth_dir = demo_data / "studies" / "liver-ct", demo_data / "groundtruth" / "liver-ct"
    if store == "dicomweb":
        orthanc = request.getfixturevalue("orthanc")
        names = {s.series_uid: name for name, s in request.getfixturevalue("demo_dicom").items()}
        server = start_server("radiology", orthanc.dicomweb_url, models="liver_ct", retrain_after="0")
    else:
        names = {p.name.removesuffix(".nii.gz"): p.name.removesuffix(".nii.gz") for p in studies.glob("*.nii.gz")}
        server = start_server("radiology", studies, models="liver_ct", retrain_after="0")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="slicer-user")

    info = client.info()
    assert info["labels"] == ["liver", "tumour"] and info["models"]["liver_ct"]["type"] == "segmentation"

    # next sample, then auto-segmentation on it: a uint8 NRRD on the image's grid
    first = client.next_sample("random", {})["id"]
    assert first in names
    result, params = client.infer("liver_ct", first, {"result_extension": ".nrrd", "result_dtype": "uint8"})
    image = sitk.ReadImage(str(studies / f"{names[first]}.nii.gz"))
    assert sitk.ReadImage(result).GetSize() == image.GetSize() and params["latencies"]["total"] > 0

    # a volume that is only in Slicer: session upload, then infer on the session
    local = tmp_path / "local-volume.nrrd"
    sitk.WriteImage(image[8:56, 4:60, :40], str(local))
    session = client.create_session(str(local))["session_id"]
    result, _ = client.infer("liver_ct", "local-volume", {"result_extension": ".nrrd"}, session_id=session)
    assert sitk.ReadImage(result).GetSize() == (48, 56, 40)

    # save labels: a labelmap NRRD for one image, Slicer's .seg.nrrd for another
    by_name = {v: k for k, v in names.items()}
    a, b = by_name["lits117_subvolume_x1y1z0"], by_name["lits117_subvolume_x0y0z0"]
    truth_a = sitk.ReadImage(str(truth_dir / "lits117_subvolume_x1y1z0.nii.gz"))
    truth_b = sitk.ReadImage(str(truth_dir / "lits117_subvolume_x0y0z0.nii.gz"))
    labelmap = tmp_path / "label.nrrd"
    sitk.WriteImage(truth_a, str(labelmap))
    assert client.save_label(a, str(labelmap), tag="final", params=LABEL_INFO)["label"] == a
    segmentation = tmp_path / "label.seg.nrrd"
    write_slicer_segmentation(truth_b, segmentation)
    assert client.save_label(b, str(segmentation), tag="final", params=LABEL_INFO)["label"] == b
    np.testing.assert_array_equal(stored_final(server, a), sitk.GetArrayFromImage(truth_a))
    np.testing.assert_array_equal(stored_final(server, b), sitk.GetArrayFromImage(truth_b))
    if store == "dicomweb":
        assert len(orthanc.series_uids("SEG")) == 2

    # train, its status, stop
    client.train_start("liver_ct", {"max_epochs": 50, "iterations_per_epoch": 20})
    deadline = time.time() + 120
    while not client.train_status(check_if_running=True) and time.time() < deadline:
        time.sleep(1)
    assert client.train_status(check_if_running=True), "training did not start"
    assert client.train_status()["status"] == "RUNNING"
    client.train_stop()
    deadline = time.time() + 60
    while client.train_status(check_if_running=True) and time.time() < deadline:
        time.sleep(1)
    assert not client.train_status(check_if_running=True)
    assert client.train_status()["status"] == "STOPPED"
