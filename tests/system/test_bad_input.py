"""Bad input gets a 4xx with a message that says what to fix; the server keeps serving; nothing stored changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import requests
import SimpleITK as sitk

pytestmark = pytest.mark.system

IMAGE = "lits117_subvolume_x0y0z0"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def put_label(url: str, image: str, path: Path, name: str | None = None) -> requests.Response:
    with open(path, "rb") as f:
        return requests.put(
            f"{url}/datastore/label",
            params={"image": image, "tag": "final"},
            files={"label": (name or path.name, f)},
            data={"params": json.dumps({"label_info": [{"name": "liver", "idx": 1}]})},
            timeout=60,
        )


@pytest.fixture
def server(demo_data, start_server):
    return start_server("radiology", demo_data / "studies" / "liver-ct", models="liver_ct", max_upload_mb="2")


def test_bad_requests_are_4xx_and_change_nothing(server, demo_data, tmp_path):
    url = server.url
    truth = demo_data / "groundtruth" / "liver-ct" / f"{IMAGE}.nii.gz"
    assert put_label(url, IMAGE, truth).status_code == 200
    stored = Path(server.process.args[server.process.args.index("--studies") + 1]) / "labels" / "final" / f"{IMAGE}.nii.gz"
    before = digest(stored)
    index_before = requests.get(f"{url}/datastore/?output=all", timeout=10).json()["objects"][IMAGE]["labels"]

    def expect(response: requests.Response, status: int, words: str) -> None:
        assert response.status_code == status, response.text
        assert words in response.json()["detail"], response.text

    expect(requests.post(f"{url}/infer/no_such_model", params={"image": IMAGE}), 404, "unknown model 'no_such_model'")
    expect(requests.post(f"{url}/activelearning/no_such_strategy", json={}), 404, "unknown active-learning strategy")
    expect(requests.post(f"{url}/train/no_such_model", json={}), 404, "unknown trainer")
    expect(requests.post(f"{url}/infer/liver_ct", params={"image": "not_there"}), 404, "'not_there' is not in the datastore")
    for bad in ("../../etc/passwd", "/etc/passwd", "a/b", "..", "x\\y"):
        expect(requests.post(f"{url}/infer/liver_ct", params={"image": bad}), 400, "no path separators")
    expect(requests.get(f"{url}/datastore/image", params={"image": "../datastore_v2.json"}), 400, "no path separators")

    # a file that is not an image: as a label, and as an image to infer on
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"this is not a NIfTI file" * 100)
    expect(put_label(url, IMAGE, junk), 400, "not a readable image")
    with open(junk, "rb") as f:
        r = requests.post(f"{url}/infer/liver_ct", files={"file": ("scan.nii.gz", f)}, data={"params": "{}"}, timeout=60)
    expect(r, 400, "cannot read the image as a 3D volume")
    assert "/tmp" not in r.json()["detail"]

    # a label whose shape does not match its image
    wrong = tmp_path / "wrong.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((10, 20, 30), np.uint8)), str(wrong))
    expect(put_label(url, IMAGE, wrong), 400, "has voxel size (30, 20, 10)")
    negative = tmp_path / "negative.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(-np.ones((64, 64, 64), np.int16)), str(negative))
    expect(put_label(url, IMAGE, negative), 400, "non-negative integer")

    # an upload over --conf max_upload_mb 2
    big = tmp_path / "big.nii.gz"
    big.write_bytes(np.random.default_rng(0).bytes(3 << 20))
    expect(put_label(url, IMAGE, big), 413, "exceeds the limit")

    # nothing stored changed, and the server still serves
    assert digest(stored) == before
    assert requests.get(f"{url}/datastore/?output=all", timeout=10).json()["objects"][IMAGE]["labels"] == index_before
    assert not list(stored.parent.glob(".*.tmp"))
    r = requests.post(f"{url}/infer/liver_ct", params={"image": IMAGE, "output": "image"}, timeout=120)
    assert r.status_code == 200 and len(r.content) > 1000


@pytest.mark.parametrize(
    "conf, words",
    [({"max_epoch": "3"}, "unknown --conf key 'max_epoch'; did you mean 'max_epochs'?"),
     ({"max_epochs": "-3"}, "--conf 'max_epochs'"),
     ({"models": "liver_ct,no_such"}, "unknown model(s) ['no_such']")],
)
def test_bad_conf_stops_start_up_naming_the_key(demo_data, start_server, conf, words):
    server = start_server("radiology", demo_data / "studies" / "liver-ct", wait=False, **conf)
    assert server.process.wait(120) != 0 or "Application startup failed" in server.log_text()
    assert words in server.log_text()
