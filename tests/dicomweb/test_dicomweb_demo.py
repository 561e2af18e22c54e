"""The DICOMweb demo command against a real Orthanc and the real server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pydicom
import pytest
import requests
import SimpleITK as sitk

pytestmark = pytest.mark.system


def _series_image(folder) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _wait(url: str, process: subprocess.Popen, log, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, f"the demo exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(log.read_text()[-3000:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_command_serves_the_ct_series_from_orthanc(demo_data, tmp_path, slicer_client_class):
    """``python -m medlabel.demo.dicomweb`` (what scripts/demo-dicomweb.sh runs): Orthanc holds the CT series,
    the server serves them by SeriesInstanceUID, a result matches the DICOM series' grid, and SIGTERM
    stops both processes."""
    data = tmp_path / "data"
    shutil.copytree(demo_data / "studies" / "liver-ct", data / "studies" / "liver-ct")
    port, orthanc_port = _free_port(), _free_port()
    log = tmp_path / "demo.log"
    env = dict(os.environ, MONAI_LABEL_SESSION_PATH=str(tmp_path / "sessions"))
    with open(log, "w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "medlabel.demo.dicomweb", "--data", str(data), "--port", str(port),
             "--orthanc-port", str(orthanc_port), "--conf", "models", "liver_ct",
             "--conf", "model_dir", str(tmp_path / "models")],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    pids: list[int] = []
    try:
        _wait(f"http://127.0.0.1:{port}/info/", demo, log)
        pids = [int(p) for p in re.findall(r"\(PID (\d+)\)", log.read_text())]
        assert len(pids) == 2, log.read_text()

        qido = requests.get(f"http://127.0.0.1:{orthanc_port}/dicom-web/series", params={"Modality": "CT"}, timeout=10)
        series_uids = {s["0020000E"]["Value"][0] for s in qido.json()}
        assert len(series_uids) == 8

        client = slicer_client_class.MONAILabelClient(f"http://127.0.0.1:{port}", tmpdir=str(tmp_path))
        assert client.info()["models"]["liver_ct"]["type"] == "segmentation"
        image_id = client.next_sample("random", {})["id"]
        assert image_id in series_uids
        result, _ = client.infer("liver_ct", image_id, {"result_extension": ".nrrd", "result_dtype": "uint8"})

        folder = next(d for d in (data / "dicom" / "liver-ct").iterdir() if _series_uid(d) == image_id)
        series, label = _series_image(folder), sitk.ReadImage(result)
        assert label.GetSize() == series.GetSize() == (64, 64, 64)
        np.testing.assert_allclose(label.GetOrigin(), series.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(label.GetDirection(), series.GetDirection(), atol=1e-6)
        np.testing.assert_allclose(label.GetSpacing(), series.GetSpacing(), atol=1e-5)
        # the series holds the demo NIfTI's voxels, so the label is on the grid of the image it was made from
        nifti = sitk.ReadImage(str(data / "studies" / "liver-ct" / f"{folder.name}.nii.gz"))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(series), sitk.GetArrayFromImage(nifti))
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
    assert demo.returncode == 0, log.read_text()[-3000:]
    assert _pids_alive(*pids) == []


def _series_uid(folder) -> str:
    return pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID


def _pids_alive(*pids: int) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive
