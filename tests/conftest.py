"""Shared fixtures: real demo data built once per run, and real monailabel servers started by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The demo studies built from the real packaged images (the same code as ``python -m medlabel.demo``)."""
    from medlabel.demo.build import build

    out = tmp_path_factory.mktemp("demo")
    build(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real ``monailabel start_server`` subprocess on 127.0.0.1, stopped by PID."""

    def __init__(self, app: str, studies: Path | str, workdir: Path, conf: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.studies = studies
        self.log_path = workdir / f"server-{self.port}.log"
        self.model_dir = workdir / "models"
        args = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(REPO / "apps" / app),
                "--studies", str(studies), "--host", "127.0.0.1", "--port", str(self.port),
                "--conf", "model_dir", str(self.model_dir)]
        for k, v in conf.items():
            args += ["--conf", k, v]
        env = dict(os.environ, MONAI_LABEL_TRACKING_ENABLED="false", MONAI_LABEL_SESSION_PATH=str(workdir / "sessions"),
                   MONAI_LABEL_DICOMWEB_CACHE_PATH=str(workdir / "dicomweb-cache"))
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> Server:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/info/", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server did not answer in {timeout}s:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """A crash: SIGKILL to the server and its training child, no clean-up of any kind."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # also ends training children
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


@pytest.fixture
def start_server(tmp_path):
    """Factory: ``start_server(app, studies, **conf)`` copies the studies and returns a ready ``Server``.

    ``reuse=True`` serves the given folder as it is (to restart a server on the same studies and models);
    a DICOMweb URL (``orthanc.dicomweb_url``) is served as it is.
    """
    started: list[Server] = []

    def start(app: str, studies: Path | str, wait: bool = True, reuse: bool = False, **conf: str) -> Server:
        if reuse or isinstance(studies, str):
            copy = studies
        else:
            copy = tmp_path / f"studies-{len(started)}"
            shutil.copytree(studies, copy)
        server = Server(app, copy, tmp_path, conf)
        started.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def slicer_client_class():
    """``MONAILabelClient`` from the 3D Slicer module's own file shipped in the monailabel wheel's data files."""
    import importlib.util

    path = Path(sys.prefix) / "monailabel/plugins/slicer/MONAILabel/MONAILabelLib/client.py"
    assert path.exists(), f"the Slicer module's client is missing at {path}"
    spec = importlib.util.spec_from_file_location("slicer_monailabel_client", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def demo_dicom(demo_data, tmp_path_factory) -> dict:
    """The demo CT studies written as DICOM series: image name -> ``WrittenSeries`` (UIDs and files)."""
    from medlabel.dicom.series import write_studies

    return write_studies(demo_data / "studies" / "liver-ct", tmp_path_factory.mktemp("dicom"))


@pytest.fixture
def orthanc(tmp_path, demo_dicom):
    """A real Orthanc (``scripts/install-orthanc.sh``) on 127.0.0.1 holding the demo CT series; stopped by PID."""
    from medlabel.dicom.orthanc import Orthanc, OrthancConfig

    server = Orthanc(OrthancConfig(storage_dir=tmp_path / "orthanc", port=free_port())).start()
    try:
        for series in demo_dicom.values():
            server.upload(series.files)
        yield server
    finally:
        server.stop()
