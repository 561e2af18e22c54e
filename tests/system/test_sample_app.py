"""The sample app serves its one spec on real MR and answers with a label on the image's grid."""

import pytest
import requests
import SimpleITK as sitk

pytestmark = pytest.mark.system


def test_sample_app_serves_its_spec(demo_data, start_server, tmp_path):
    from pathlib import Path

    app = Path(__file__).resolve().parents[2] / "sample-apps" / "brain_mask"
    assert app.exists()
    server = start_server("../sample-apps/brain_mask", demo_data / "studies" / "brain-mr")
    info = requests.get(f"{server.url}/info/", timeout=10).json()
    assert info["name"] == "brain-mask" and info["labels"] == ["brain"]
    assert info["models"]["brain"]["type"] == "segmentation"
    image = "mni152_subvolume_x0y0z0"
    r = requests.post(f"{server.url}/infer/brain", params={"image": image, "output": "image"},
                      data={"params": '{"result_extension": ".nii.gz"}'}, timeout=120)
    assert r.status_code == 200, r.text
    out = tmp_path / "out.nii.gz"
    out.write_bytes(r.content)
    assert sitk.ReadImage(str(out)).GetSize() == sitk.ReadImage(str(demo_data / "studies" / "brain-mr" / f"{image}.nii.gz")).GetSize()
