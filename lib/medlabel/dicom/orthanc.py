"""A local Orthanc (Debian packages ``orthanc``, ``orthanc-dicomweb``) as the DICOMweb server.

Started directly as ``/usr/sbin/Orthanc CONFIG.json`` so that the process we hold is Orthanc itself and
can be stopped by its PID. It cannot bind to loopback only; ``RemoteAccessAllowed: false`` refuses every
non-local client, and the DICOM (DIMSE) port stays closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import requests
from pydantic import BaseModel, ConfigDict

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_HINT = "run scripts/install-orthanc.sh (Debian packages orthanc, orthanc-dicomweb)"


class OrthancConfig(BaseModel):
    """Where Orthanc keeps its files and which loopback port it answers on."""

    model_config = ConfigDict(frozen=True)

    storage_dir: Path
    port: int = 8042
    name: str = "medlabel"

    def as_json(self) -> dict:
        folder = str(self.storage_dir / "db")
        return {
            "Name": self.name,
            "StorageDirectory": folder,
            "IndexDirectory": folder,
            "HttpServerEnabled": True,
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
        }


class Orthanc:
    """One Orthanc process: ``start()`` waits until it answers, ``stop()`` ends it by PID."""

    def __init__(self, config: OrthancConfig):
        self.config = config
        self.url = f"http://127.0.0.1:{config.port}"
        self.dicomweb_url = f"{self.url}/dicom-web"
        self.log_path = config.storage_dir / "orthanc.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Orthanc:
        for path in (ORTHANC, DICOMWEB_PLUGIN):
            if not path.exists():
                raise RuntimeError(f"{path} is missing: {INSTALL_HINT}")
        self.config.storage_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.config.storage_dir / "orthanc.json"
        config_file.write_text(json.dumps(self.config.as_json(), indent=2))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(ORTHANC), str(config_file)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self.wait_ready(timeout)

    def answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/system", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 30) -> Orthanc:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.answers():
                return self
            time.sleep(0.2)
        raise TimeoutError(f"Orthanc did not answer on {self.url} within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to Orthanc's PID (it flushes its index), SIGKILL if it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def upload(self, files: list[Path]) -> list[str]:
        """Stores DICOM files through Orthanc's ``/instances`` REST call; returns their Orthanc ids."""
        ids = []
        with requests.Session() as session:
            for path in files:
                response = session.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=60)
                response.raise_for_status()
                ids.append(response.json()["ID"])
        return ids

    def series_uids(self, modality: str | None = None) -> list[str]:
        """SeriesInstanceUIDs Orthanc holds (QIDO-RS), optionally of one modality."""
        params = {"Modality": modality} if modality else {}
        response = requests.get(f"{self.dicomweb_url}/series", params=params, timeout=30)
        response.raise_for_status()
        return [s["0020000E"]["Value"][0] for s in (response.json() if response.content else [])]
