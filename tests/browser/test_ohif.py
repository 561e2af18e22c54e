"""OHIF (the build inside the monailabel wheel, served by our server at /ohif/) in a real headless Chromium.

A real Orthanc holds the demo CT series; our server serves them from its DICOMweb URL. ``ohif_flow.mjs``
(playwright-core driving Debian's chromium; ``scripts/install-browser.sh`` installs both) clicks through
the MONAI Label mode and reads back what OHIF shows; this test checks it against the server's own answer
and the DICOM files. Screenshots stay under the test's tmp dir (the path is printed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nrrd
import numpy as np
import pydicom
import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.system

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("MEDLABEL_CHROMIUM", "/usr/bin/chromium")
SETUP_HINT = "run scripts/install-browser.sh (Debian chromium, npm ci in tests/browser)"


def run_flow(server_url: str, out: Path, label_image: str, label_file: Path, timeout: float = 1200,
             point_prompt: str | None = None) -> dict:
    """Runs the browser flow; returns its result.json (raises with the flow's output when it fails)."""
    node = shutil.which("node")
    assert node, f"node is missing: {SETUP_HINT}"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: {SETUP_HINT}"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), f"playwright-core is missing: {SETUP_HINT}"
    command = [node, str(HERE / "ohif_flow.mjs"), "--server", server_url, "--out", str(out), "--chromium", CHROMIUM,
               "--label-image", label_image, "--label-file", str(label_file)]
    if point_prompt:
        command += ["--point-prompt", point_prompt]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    assert done.returncode == 0 and result.get("ok"), (
        f"the OHIF flow failed (screenshots in {out}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n"
        f"console errors: {result.get('console_errors', [])[:10]}\nrequests: {result.get('requests')}")
    return result


def slice_positions(files: list[Path], normal: np.ndarray) -> dict[str, float]:
    """SOPInstanceUID -> the slice's position along ``normal`` (mm)."""
    positions = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        positions[str(ds.SOPInstanceUID)] = float(np.dot(np.array(ds.ImagePositionPatient, float), normal))
    return positions


def test_ohif_monai_label_flow(orthanc, demo_dicom, demo_data, start_server, slicer_client_class, tmp_path):
    server = start_server("radiology", orthanc.dicomweb_url, wait=False, models="liver_ct", retrain_after="0",
                          max_epochs="50").wait_ready(timeout=600)  # a loaded CI machine can take minutes
    by_series = {s.series_uid: (name, s) for name, s in demo_dicom.items()}
    labelled_name, labelled = next(iter(demo_dicom.items()))
    truth = demo_data / "groundtruth" / "liver-ct" / f"{labelled_name}.nii.gz"

    out = tmp_path / "ohif"
    print(f"\nOHIF screenshots and readings: {out}")
    result = run_flow(server.url, out, labelled.series_uid, truth)
    steps = {s["step"]: s for s in result["steps"]}

    # the study list shows every study in Orthanc; the panel connects to our app
    assert steps["study list"]["studies"] == len(demo_dicom)
    assert steps["connected"]["app"] == steps["reconnected"]["app"] == "medlabel-radiology"

    # "Update Model" before any final label: the server refuses with 409 (OHIF shows "Failed to RUN training")
    assert steps["update model without labels refused"]["train_request"]["status"] == 409

    # "Next Sample" reloads the viewer on the sample's study; the viewer shows the sampled series
    form = dict(line.split("\t", 1) for line in steps["next sample"]["form"].splitlines()[1:])
    series_uid, study_uid = form["Series Instance UID"], form["Study Instance UID"]
    assert series_uid in by_series and by_series[series_uid][1].study_uid == study_uid
    assert steps["next sample"]["url"].endswith(f"StudyInstanceUIDs={study_uid}")
    shown = result["image_volume"]
    name, series = by_series[series_uid]
    assert set(shown["sopInstanceUIDs"]) == {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                                             for f in series.files}
    infer_posts = [r for r in result["requests"] if r["path"].startswith("/infer/liver_ct")]
    assert infer_posts and all(r["status"] == 200 for r in infer_posts)
    assert f"image={series_uid}" in infer_posts[-1]["path"]

    # the result NRRD (what OHIF received) has the DICOM series' voxel count and order
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path))
    result_file, _ = client.infer("liver_ct", series_uid, {"result_extension": ".nrrd", "result_dtype": "uint8",
                                                          "result_compress": False, "restore_label_idx": False})
    label, header = nrrd.read(result_file)  # label[i, j, k]: i along a row, j down the columns, k across slices
    first = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    assert label.shape == (first.Columns, first.Rows, len(series.files))
    axes = np.asarray(header["space directions"], float)  # rows: the i, j, k steps in LPS mm
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(axes[0] / np.linalg.norm(axes[0]), np.array(first.ImageOrientationPatient[:3], float), atol=1e-5)
    np.testing.assert_allclose(axes[1] / np.linalg.norm(axes[1]), np.array(first.ImageOrientationPatient[3:], float), atol=1e-5)
    normal = axes[2] / np.linalg.norm(axes[2])
    positions = slice_positions(series.files, normal)
    origin_along = float(np.dot(np.asarray(header["space origin"], float), normal))
    nrrd_slice = {uid: int(round((p - origin_along) / np.linalg.norm(axes[2]))) for uid, p in positions.items()}
    assert sorted(nrrd_slice.values()) == list(range(label.shape[2])), "NRRD slices do not map one-to-one onto the DICOM instances"

    # the overlay OHIF shows is that result, voxel for voxel, in OHIF's own slice order
    lm = result["labelmap"]
    shown_labels = np.frombuffer((out / "labelmap.bin").read_bytes(), np.uint8)
    assert lm["dimensions"] == list(label.shape) and shown_labels.size == label.size
    segment_of = {1: int(next(k for k, v in lm["segments"].items() if v == "liver")),
                  2: int(next(k for k, v in lm["segments"].items() if v == "tumour"))}
    expected_ijk = np.zeros_like(label)
    for model_idx, segment in segment_of.items():
        expected_ijk[label == model_idx] = segment
    order = [nrrd_slice[uid] for uid in shown["sopInstanceUIDs"]]  # OHIF's slice s is NRRD slice order[s]
    expected = expected_ijk[:, :, order].transpose(2, 1, 0).ravel()  # cornerstone: i fastest, then j, then s
    mismatch = float(np.mean(expected != shown_labels))
    flipped = float(np.mean(expected_ijk[:, :, order[::-1]].transpose(2, 1, 0).ravel() != shown_labels))
    assert lm["nonzero"] == int(np.count_nonzero(shown_labels)) > 0
    assert mismatch < 1e-3, f"{mismatch:.2%} of OHIF's labelmap voxels differ from the server's result"
    assert flipped > 0.02, "the labelmap is too symmetric for this check to see a flipped slice order"

    # the viewport visibly changed where the overlay was drawn
    before = np.asarray(Image.open(out / "04-viewport-before.png").convert("RGB"), np.int16)
    after = np.asarray(Image.open(out / "05-viewport-after.png").convert("RGB"), np.int16)
    changed = float(np.mean(np.abs(after - before).sum(axis=2) > 30))
    assert changed > 0.05, f"only {changed:.1%} of the viewport changed after auto-segmentation"

    # "Update Model" with a final label trains; "Stop Training" stops it
    assert "update model trains" in steps and "stop training" in steps
    status = requests.get(f"{server.url}/train/", timeout=30).json()
    assert status["status"] == "STOPPED", status
    print(f"OHIF flow: {steps['stop training']['t_s']} s in the browser; {mismatch:.3%} voxels differ "
          f"(flipped order: {flipped:.1%}); viewport changed {changed:.1%}")


def test_ohif_point_prompts_run_the_click_model(orthanc, demo_dicom, demo_data, start_server, tmp_path):
    """OHIF's *Point Prompts* tab lists the click model (type ``deepgrow``) and sends the point as a voxel index
    of the displayed volume; the answer must land where the user clicked, off the centre (a wrong index
    convention puts it elsewhere: the click correction makes the voxels around the click foreground)."""
    server = start_server("radiology", orthanc.dicomweb_url, wait=False, models="liver_clicks",
                          retrain_after="0").wait_ready(timeout=600)
    labelled_name, labelled = next(iter(demo_dicom.items()))
    truth = demo_data / "groundtruth" / "liver-ct" / f"{labelled_name}.nii.gz"
    out = tmp_path / "ohif"
    print(f"\nOHIF screenshots and readings: {out}")
    steps = {s["step"]: s for s in run_flow(server.url, out, labelled.series_uid, truth, point_prompt="liver")["steps"]}
    point = steps["point prompt"]
    assert point["infer"]["path"].startswith("/infer/liver_clicks") and point["infer"]["status"] == 200, point
    assert point["value"] == point["segment"] and point["near"] == 1.0 and point["voxels"] > 0, point
    print(f"OHIF point prompt at {point['ijk']}: {point['voxels']} voxels of segment {point['segment']}, "
          f"{point['near']:.0%} of the 5^3 voxels around the point")
