"""docs/ohif.png: OHIF showing a liver_ct result, made by the real stack.

Builds the demo data, writes the CT sub-volumes as DICOM series into a fresh Orthanc, starts our server on
its DICOMweb URL, submits the ground-truth labels of the other sub-volumes that contain liver (stored in Orthanc as DICOM SEG),
trains ``liver_ct`` once, and then runs the OHIF flow of tests/browser (open the study list, MONAI Label
mode, connect, Next Sample, Run) in headless Chromium, saving the window as the figure. The two
sub-volumes left unlabelled are the held-out ones of tests/system/test_continual_loop.py.

    scripts/install-orthanc.sh && scripts/install-browser.sh
    MONAI_LABEL_TRACKING_ENABLED=false .venv/bin/python bench/ohif_figure.py --epochs 12 --out docs/ohif.png

Prints the training time, the served model version and the held-out Dice of what OHIF shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # not "tests.": the monailabel wheel installs a top-level tests package
from conftest import Server, free_port  # noqa: E402  (the test suite's server runner, stopped by PID)

from medlabel.demo.build import build  # noqa: E402
from medlabel.dicom.orthanc import Orthanc, OrthancConfig  # noqa: E402
from medlabel.dicom.series import write_studies  # noqa: E402

HELD_OUT = ["lits117_subvolume_x1y1z0", "lits117_subvolume_x1y0z1"]
LABEL_INFO = [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ohif.png")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="medlabel-ohif-figure-"))
    work.mkdir(parents=True, exist_ok=True)
    build(work / "demo")
    written = write_studies(work / "demo" / "studies" / "liver-ct", work / "dicom")
    with Orthanc(OrthancConfig(storage_dir=work / "orthanc", port=free_port())) as orthanc:
        for series in written.values():
            orthanc.upload(series.files)
        server = Server("radiology", orthanc.dicomweb_url, work, {"models": "liver_ct", "retrain_after": "0"})
        try:
            server.wait_ready(timeout=900)
            for name, series in written.items():
                truth = work / "demo" / "groundtruth" / "liver-ct" / f"{name}.nii.gz"
                if name in HELD_OUT or not sitk.GetArrayFromImage(sitk.ReadImage(str(truth))).any():
                    continue  # held out, or no liver in this octant (a DICOM SEG needs a labelled voxel)
                with open(truth, "rb") as f:
                    r = requests.put(f"{server.url}/datastore/label", params={"image": series.series_uid, "tag": "final"},
                                     files={"label": (truth.name, f), "params": (None, json.dumps({"label_info": LABEL_INFO}))},
                                     timeout=120)
                assert r.status_code == 200, f"label for {name}: {r.status_code} {r.text}"
            t0 = time.time()
            requests.post(f"{server.url}/train/liver_ct", json={"max_epochs": args.epochs}, timeout=60).raise_for_status()
            time.sleep(3)
            while requests.get(f"{server.url}/train/", timeout=30).json().get("status") in ("SUBMITTED", "RUNNING"):
                time.sleep(5)
            trained_s = time.time() - t0
            version = requests.get(f"{server.url}/info/", timeout=30).json()["models"]["liver_ct"]["version"]

            flow = work / "flow"
            shutil.rmtree(flow, ignore_errors=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["node", str(REPO / "tests" / "browser" / "ohif_flow.mjs"), "--server", server.url,
                            "--out", str(flow), "--figure", str(args.out)], check=True, timeout=1200)
            result = json.loads((flow / "result.json").read_text())
            form = next(s for s in result["steps"] if s["step"] == "next sample")["form"]
            series_uid = dict(line.split("\t", 1) for line in form.splitlines()[1:])["Series Instance UID"]
            name = next(n for n, s in written.items() if s.series_uid == series_uid)
            truth = sitk.GetArrayFromImage(sitk.ReadImage(str(work / "demo" / "groundtruth" / "liver-ct" / f"{name}.nii.gz")))
            shown = np.frombuffer((flow / "labelmap.bin").read_bytes(), np.uint8).reshape(truth.shape)
            liver_segment = int(next(k for k, v in result["labelmap"]["segments"].items() if v == "liver"))
            tumour_segment = int(next(k for k, v in result["labelmap"]["segments"].items() if v == "tumour"))
            # compared as whole liver (liver + tumour); OHIF's slice order is checked voxel-exact by the test,
            # here the figure's sub-volume is assumed to run in the NIfTI's order (ascending k = OHIF's order).
            fg_shown = np.isin(shown, [liver_segment, tumour_segment])
            dice = {o: _dice(fg_shown[::o], truth > 0) for o in (1, -1)}
            print(f"trained {args.epochs} epochs in {trained_s:.0f} s -> liver_ct version {version}; OHIF showed {name}: "
                  f"whole-liver Dice {dice[1]:.2f} (slices reversed: {dice[-1]:.2f}); figure {args.out}")
        finally:
            server.stop()
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.sum(a & b) / max(1, a.sum() + b.sum()))


if __name__ == "__main__":
    os.environ.setdefault("MONAI_LABEL_TRACKING_ENABLED", "false")
    main()
