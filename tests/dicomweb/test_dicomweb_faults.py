"""Faults with a real Orthanc: unreachable at start, gone mid-session, malformed SEGs; nothing half-written."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
import SimpleITK as sitk

from medlabel.dicom.orthanc import Orthanc, OrthancConfig

pytestmark = pytest.mark.system

NAME = "lits117_subvolume_x1y1z0"
FIXTURES = Path(__file__).parent / "data"
PARAMS = {"params": json.dumps({"label_info": [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]})}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put_label(server, image_id: str, path: Path, name: str | None = None) -> requests.Response:
    with open(path, "rb") as f:
        return requests.put(f"{server.url}/datastore/label", params={"image": image_id, "tag": "final"},
                            files={"label": (name or path.name, f)}, data=PARAMS, timeout=120)


def next_sample(server) -> requests.Response:
    return requests.post(f"{server.url}/activelearning/random", json={}, timeout=120)


def nothing_stored(server, image_id: str) -> None:
    """No label version, no final label and no partial file left in the server's DICOMweb cache."""
    assert requests.get(f"{server.url}/medlabel/labels/{image_id}/versions", timeout=10).json()["versions"] == []
    objects = requests.get(f"{server.url}/datastore/", params={"output": "all"}, timeout=30).json()["objects"]
    assert "final" not in objects.get(image_id, {}).get("labels", {})
    cache = Path(server.log_path).parent / "dicomweb-cache"
    leftovers = [p for p in cache.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(f".{image_id}.")]
    assert leftovers == []


def test_orthanc_unreachable_at_start_then_back(start_server, demo_dicom, tmp_path):
    port = _free_port()
    server = start_server("radiology", f"http://127.0.0.1:{port}/dicom-web", models="liver_ct")

    info = requests.get(f"{server.url}/info/", timeout=30)
    assert info.status_code == 200 and "cannot be reached" in info.json()["datastore"]["unavailable"]
    down = next_sample(server)
    assert down.status_code == 503, down.text
    assert f"127.0.0.1:{port}" in down.json()["detail"] and "cannot be reached" in down.json()["detail"]

    orthanc = Orthanc(OrthancConfig(storage_dir=tmp_path / "late-orthanc", port=port)).start()
    try:
        orthanc.upload(demo_dicom[NAME].files)
        up = next_sample(server)
        assert up.status_code == 200, up.text
        assert up.json()["id"] == demo_dicom[NAME].series_uid
    finally:
        orthanc.stop()


def test_orthanc_gone_mid_session_then_back(orthanc, start_server, demo_data, demo_dicom, slicer_client_class,
                                            tmp_path):
    image_id = demo_dicom[NAME].series_uid
    truth = demo_data / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz"
    server = start_server("radiology", orthanc.dicomweb_url, models="liver_ct", retrain_after="0")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path))
    client.infer("liver_ct", image_id, {"result_extension": ".nrrd"})  # the image is now in the server's cache

    orthanc.stop()
    lost = put_label(server, image_id, truth)
    assert lost.status_code == 503, lost.text
    assert "cannot be reached while storing the DICOM SEG" in lost.json()["detail"]
    nothing_stored(server, image_id)
    other = next(s.series_uid for n, s in demo_dicom.items() if n != NAME)
    assert requests.post(f"{server.url}/infer/liver_ct", params={"image": other}, timeout=60).status_code == 503
    # still serving: info, and inference on the cached image
    assert requests.get(f"{server.url}/info/", timeout=30).status_code == 200
    result, _ = client.infer("liver_ct", image_id, {"result_extension": ".nrrd"})
    assert sitk.ReadImage(result).GetSize() == (64, 64, 64)

    orthanc.start()  # same storage: the studies are back
    saved = put_label(server, image_id, truth)
    assert saved.status_code == 200, saved.text
    assert len(orthanc.series_uids("SEG")) == 1


def test_malformed_seg_uploads_are_rejected(orthanc, start_server, demo_data, demo_dicom, tmp_path):
    image_id = demo_dicom[NAME].series_uid
    server = start_server("radiology", orthanc.dicomweb_url, models="liver_ct", retrain_after="0")

    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes((FIXTURES / "labelmap_seg.dcm").read_bytes()[:5000])
    shifted = pydicom.dcmread(FIXTURES / "labelmap_seg.dcm")
    position = shifted.PerFrameFunctionalGroupsSequence[10].PlanePositionSequence[0]
    position.ImagePositionPatient = [float(v) + 0.5 for v in position.ImagePositionPatient]
    shifted.save_as(tmp_path / "shifted.dcm")
    not_seg = demo_dicom[NAME].files[0]  # a CT slice, not a SEG

    for bad, reason in [(truncated, "not a readable DICOM file|pixel data|not a DICOM SEG"), (tmp_path / "shifted.dcm",
                        "frame 11 .* does not lie on a slice"), (not_seg, "not a DICOM SEG")]:
        answer = put_label(server, image_id, bad)
        assert answer.status_code == 400, answer.text
        assert re.search(reason, answer.json()["detail"]), answer.json()["detail"]
        nothing_stored(server, image_id)
    assert orthanc.series_uids("SEG") == []

    # a SEG stored in the PACS that does not fit its image is skipped when training reads the labels
    orthanc.upload([tmp_path / "shifted.dcm"])
    pairs = requests.get(f"{server.url}/datastore/", params={"output": "train"}, timeout=120)
    assert pairs.status_code == 200 and pairs.json() == []
    nothing_stored(server, image_id)

    # a good SEG uploaded as the label is accepted and stored
    good = put_label(server, image_id, FIXTURES / "labelmap_seg.dcm")
    assert good.status_code == 200, good.text
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(demo_data / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz")))
    [pair] = requests.get(f"{server.url}/datastore/", params={"output": "train"}, timeout=120).json()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(pair["label"])), truth)
