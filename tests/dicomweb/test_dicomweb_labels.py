"""DICOM SEG both ways through a real Orthanc and the real server, driven by the Slicer module's client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom_seg
import pytest
import requests
import SimpleITK as sitk

pytestmark = pytest.mark.system

NAME = "lits117_subvolume_x1y1z0"
FIXTURES = Path(__file__).parent / "data"
LABEL_INFO = {"label_info": [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]}


def seg_datasets(orthanc) -> list[pydicom.Dataset]:
    """Every SEG instance Orthanc holds, as stored."""
    from io import BytesIO

    found = []
    for series in orthanc.series_uids("SEG"):
        ids = requests.post(f"{orthanc.url}/tools/lookup", data=series, timeout=10).json()
        instances = requests.get(f"{orthanc.url}/series/{ids[0]['ID']}/instances", timeout=10).json()
        for instance in instances:
            raw = requests.get(f"{orthanc.url}/instances/{instance['ID']}/file", timeout=10).content
            found.append(pydicom.dcmread(BytesIO(raw)))
    return found


def train_pairs(server) -> dict[str, np.ndarray]:
    """What training would read: image id -> final label voxels (k, j, i), from GET /datastore/?output=train."""
    pairs = requests.get(f"{server.url}/datastore/", params={"output": "train"}, timeout=120)
    assert pairs.status_code == 200, pairs.text
    return {Path(p["image"]).name.removesuffix(".nii.gz"): sitk.GetArrayFromImage(sitk.ReadImage(p["label"]))
            for p in pairs.json()}


def versions(server, image_id: str) -> list[dict]:
    return requests.get(f"{server.url}/medlabel/labels/{image_id}/versions", timeout=10).json()["versions"]


def test_final_label_is_stored_as_a_seg_on_its_series(orthanc, start_server, slicer_client_class, demo_data,
                                                       demo_dicom, tmp_path):
    series_uid = demo_dicom[NAME].series_uid
    truth_file = demo_data / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz"
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_file)))
    server = start_server("radiology", orthanc.dicomweb_url, models="liver_ct", retrain_after="0")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="annotator-1")

    saved = client.save_label(series_uid, str(truth_file), tag="final", params=LABEL_INFO)
    assert saved["label"] == series_uid

    [seg] = seg_datasets(orthanc)
    assert seg.Modality == "SEG" and seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    assert seg.StudyInstanceUID == demo_dicom[NAME].study_uid
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "tumour"]
    # an independent reader (pydicom-seg, as monailabel's stock store uses) gets the label back exactly
    np.testing.assert_array_equal(sitk.GetArrayFromImage(pydicom_seg.MultiClassReader().read(seg).image), truth)

    assert series_uid not in client.next_sample("first", {})["id"]
    assert all(client.next_sample("random", {})["id"] != series_uid for _ in range(4))
    np.testing.assert_array_equal(train_pairs(server)[series_uid], truth)
    [version] = versions(server, series_uid)
    assert version["submitted_by"] == "annotator-1" and version["tag"] == "final"


def test_segs_written_by_viewers_are_read_back_newest_first(orthanc, start_server, slicer_client_class, demo_data,
                                                             demo_dicom, tmp_path):
    series_uid = demo_dicom[NAME].series_uid
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(demo_data / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz")))
    server = start_server("radiology", orthanc.dicomweb_url, models="liver_ct", retrain_after="0")

    # the LABELMAP kind OHIF 3.13 writes, stored straight into the PACS as OHIF does
    orthanc.upload([FIXTURES / "labelmap_seg.dcm"])
    np.testing.assert_array_equal(train_pairs(server)[series_uid], truth)
    assert [v["submitted_by"] for v in versions(server, series_uid)] == ["dicomweb"]

    # a later label from the Slicer client becomes the newest SEG and so the final label
    liver_only = tmp_path / "liver.nii.gz"
    image = sitk.ReadImage(str(demo_data / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz"))
    sitk.WriteImage(sitk.Cast(image == 1, sitk.sitkUInt8), str(liver_only))
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="annotator-2")
    client.save_label(series_uid, str(liver_only), tag="final", params=LABEL_INFO)
    assert len(orthanc.series_uids("SEG")) == 2
    np.testing.assert_array_equal(train_pairs(server)[series_uid], (truth == 1).astype(np.uint8))
    assert [v["submitted_by"] for v in versions(server, series_uid)] == ["dicomweb", "annotator-2"]
