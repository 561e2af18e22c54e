"""``python -m medlabel.demo.dicomweb``: the demo CT served through a local Orthanc (DICOMweb).

Writes the demo CT studies as DICOM series, starts Orthanc on loopback, uploads them, and runs the
monailabel server with ``--studies http://127.0.0.1:PORT/dicom-web`` until Ctrl-C; then stops both by
PID. Build the demo studies first (``python -m medlabel.demo``); ``scripts/demo-dicomweb.sh`` does it all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from medlabel.dicom.orthanc import Orthanc, OrthancConfig
from medlabel.dicom.series import write_studies

REPO = Path(__file__).resolve().parents[3]


def upload_demo(orthanc: Orthanc, studies: Path, dicom_dir: Path) -> dict[str, str]:
    """Writes every NIfTI in ``studies`` as a series under ``dicom_dir`` and stores it in Orthanc.

    Returns image name -> SeriesInstanceUID (the image id the server then uses).
    """
    written = write_studies(studies, dicom_dir)
    for series in written.values():
        orthanc.upload(series.files)
    return {name: series.series_uid for name, series in written.items()}


def server_command(app: Path, studies_url: str, port: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", studies_url,
            "--host", "127.0.0.1", "--port", str(port), *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("demo-data"), help="built demo data (default: demo-data)")
    parser.add_argument("--set", default="liver-ct", help="which demo study set to serve (default: liver-ct)")
    parser.add_argument("--app", type=Path, default=REPO / "apps" / "radiology")
    parser.add_argument("--port", type=int, default=8000, help="our server's port (default: 8000)")
    parser.add_argument("--orthanc-port", type=int, default=28042, help="Orthanc's HTTP port (default: 28042)")
    args, server_args = parser.parse_known_args()  # the rest (e.g. --conf k v) goes to start_server

    studies = args.data / "studies" / args.set
    if not studies.is_dir():
        sys.exit(f"{studies} is missing: run `python -m medlabel.demo --out {args.data}` first")
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops both services like Ctrl-C
    with Orthanc(OrthancConfig(storage_dir=args.data / "orthanc", port=args.orthanc_port)) as orthanc:
        uids = upload_demo(orthanc, studies, args.data / "dicom" / args.set)
        print(f"Orthanc {orthanc.dicomweb_url} (PID {orthanc.process.pid}) holds {len(uids)} CT series", flush=True)
        env = dict(os.environ, MONAI_LABEL_TRACKING_ENABLED="false",
                   MONAI_LABEL_DICOMWEB_CACHE_PATH=str((args.data / "dicomweb-cache").resolve()))
        server = subprocess.Popen(server_command(args.app, orthanc.dicomweb_url, args.port, server_args),
                                  env=env, start_new_session=True)
        print(f"server http://127.0.0.1:{args.port} (PID {server.pid}); OHIF at http://127.0.0.1:{args.port}/ohif/",
              flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt

if __name__ == "__main__":
    main()
