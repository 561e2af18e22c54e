"""End-to-end ``/infer`` latency, peak server memory and training seconds per epoch, against real servers.

    .venv/bin/python bench/infer_latency.py [--reference] [--big] [--repeats N] [--json OUT]

What it does, all offline and sequentially (one server at a time):

1. Builds the inputs: the demo CT (the whole 128^3 LiTS case 117 volume written by ``medlabel.demo``)
   and, with ``--big``, a 512x512x200 CT-sized volume resampled from the same real CT (0.7x0.7x2.0 mm,
   int16 HU). Each goes into its own studies folder.
2. Starts our ``apps/radiology`` server (model ``liver_ct``) as a subprocess, times
   ``POST /infer/liver_ct?image=ID&output=image`` the way OHIF and Slicer call it (first call, then
   ``--repeats`` warm calls; median), and samples the RSS of the server's whole process tree every 0.1 s.
   One extra ``output=json`` call returns the server's own stage latencies.
3. With ``--reference``, does the same for MONAI Label's own ``radiology`` sample app (``segmentation``
   config, untrained SegResNet), run from the overlay that ``bench/reference_env.sh`` prepares.
   With ``--same-network``, also serves that very network (SegResNet, 26 classes, 96^3 windows) through
   our server, so the two servers can be compared with the network held fixed.
4. Times training of ``liver_ct`` (4 real labelled octants, ``--train-epochs`` epochs) through the REST API
   (server-side retraining is switched off with ``--conf retrain_after 0`` where the app has it).
5. Splits our inference into load / orient / resample / intensity / network / softmax / restore / write
   in-process (no server), to say where the time goes.
6. Prints markdown tables (and ratios ours/reference); ``--json OUT`` writes every number.

The machine it runs on matters: compare numbers only within one run. On a shared machine, each measurement
first waits (``--quiet-wait``, default 120 s) for other processes to go idle, and the tables report how many
cores other processes used meanwhile ("other load"): torch on 2 cores slows down 3x or more when one of them
is busy. A measured server is killed above ``--rss-limit-gb`` / ``--reference-rss-limit-gb`` or when the
machine's available memory drops below ``--min-available-gb``.

The reference on the 512x512x200 volume takes about 12 minutes a call and about 19 GB; measure it with
one call: ``--big --only-big --reference --reference-repeats 0``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
BIG_SHAPE = (512, 512, 200)
BIG_SPACING = (0.7, 0.7, 2.0)
TRAIN_IDS = ["lits117_subvolume_x1y0z0", "lits117_subvolume_x0y1z0", "lits117_subvolume_x1y0z1", "lits117_subvolume_x1y1z1"]
LABEL_INFO = [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]
INFER_PARAMS = {"result_extension": ".nrrd", "result_dtype": "uint8"}
GB = 1024**3


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- inputs


def build_inputs(data_dir: Path, big: bool) -> dict[str, Path]:
    """The demo CT (and the CT-sized volume) as NIfTI files, built once and reused from ``data_dir``."""
    from medlabel.demo.build import build

    demo_root = data_dir / "demo"
    demo = demo_root / "reference" / "lits117_image.nii.gz"
    if not demo.exists() or not (demo_root / "groundtruth" / "liver-ct").is_dir():
        log(f"building the demo data in {demo_root}")
        build(demo_root, force=True)
    volumes = {"demo CT 128x128x128": demo}
    if big:
        path = data_dir / "ct512x512x200.nii.gz"
        if not path.exists():
            log("resampling the real CT to 512x512x200 (0.7x0.7x2.0 mm, int16 HU)")
            write_ct_sized(demo, path)
        volumes["CT 512x512x200"] = path
    return volumes


def write_ct_sized(source: Path, out: Path) -> None:
    """Trilinear zoom of the real 128^3 CT onto a 512x512x200 grid; direction kept, spacing 0.7x0.7x2.0 mm."""
    import nibabel as nib
    from scipy.ndimage import zoom

    src = nib.load(str(source))
    data = np.asarray(src.dataobj, dtype=np.float32)
    factors = [t / s for t, s in zip(BIG_SHAPE, data.shape)]
    big = zoom(data, factors, order=1, output=np.float32, mode="nearest")
    big = np.clip(np.rint(big), -1024, 3071).astype(np.int16)
    assert big.shape == BIG_SHAPE, big.shape
    direction = src.affine[:3, :3] / np.linalg.norm(src.affine[:3, :3], axis=0)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(BIG_SPACING)
    affine[:3, 3] = src.affine[:3, 3]
    image = nib.Nifti1Image(big, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    tmp = out.with_name(out.name + ".part.nii.gz")
    nib.save(image, str(tmp))
    os.replace(tmp, out)


def studies_with(image: Path, folder: Path) -> tuple[Path, str]:
    """A fresh studies folder holding only ``image`` (hard-linked), and the image id the server will use."""
    folder.mkdir(parents=True)
    target = folder / image.name
    try:
        os.link(image, target)
    except OSError:
        shutil.copy2(image, target)
    return folder, image.name.removesuffix(".nii.gz")


# ---------------------------------------------------------------------------------------------- servers


class RssSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants; kills the group above a limit."""

    def __init__(self, pid: int, interval: float = 0.1, limit_bytes: float | None = None,
                 min_available_bytes: float = 0):
        super().__init__(daemon=True)
        self.pid, self.interval, self.limit = pid, interval, limit_bytes
        self.min_available = min_available_bytes
        self.peak = 0
        self.last = 0
        self.killed_at: float | None = None
        self._stop_event = threading.Event()

    def tree_rss(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def reset_peak(self) -> None:
        self.peak = self.tree_rss()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.last = self.tree_rss()
            self.peak = max(self.peak, self.last)
            over = self.limit and self.last > self.limit
            starved = self.min_available and psutil.virtual_memory().available < self.min_available
            if (over or starved) and self.killed_at is None:
                self.killed_at = self.last
                why = "passed the limit" if over else "and the machine is nearly out of memory"
                log(f"server tree RSS {self.last / GB:.1f} GB {why}: killing it")
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A monailabel server in its own process group, with its log and an RSS sampler."""

    name: str
    app: Path
    studies: Path
    conf: dict[str, str]
    log_path: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    rss_limit_gb: float | None = None
    start_timeout: float = 180.0
    quiet_wait: float = 0.0
    min_available_gb: float = 0.0

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.sampler: RssSampler | None = None
        self.start_s = float("nan")

    def __enter__(self) -> Server:
        cmd = [str(PYTHON), "-m", "monailabel.main", "start_server", "--app", str(self.app), "--studies",
               str(self.studies), "--host", "127.0.0.1", "--port", str(self.port)]
        for k, v in self.conf.items():
            cmd += ["--conf", k, v]
        env = {**os.environ, "MONAI_LABEL_TRACKING_ENABLED": "false", **self.env_extra}
        self.command = " ".join(cmd)
        log(f"starting {self.name}: {self.command}")
        self._log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        limit = self.rss_limit_gb * GB if self.rss_limit_gb else None
        self.sampler = RssSampler(self.proc.pid, limit_bytes=limit, min_available_bytes=self.min_available_gb * GB)
        self.sampler.start()
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start; see {self.log_path}")
            try:
                if requests.get(f"{self.url}/info/", timeout=5).status_code == 200:
                    self.start_s = time.perf_counter() - t0
                    log(f"{self.name} up in {self.start_s:.1f} s")
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.name} did not answer /info/ in {self.start_timeout:.0f} s; see {self.log_path}")

    def hwm_bytes(self) -> int | None:
        """Kernel high-water mark of the main server process's RSS (VmHWM), exact, no sampling."""
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) * 1024
        except (OSError, AttributeError):
            return None

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
            except ProcessLookupError:
                pass
        if self.sampler:
            self.sampler.stop()
        self._log.close()


def infer(server: Server, model: str, image_id: str, output: str, timeout: float) -> tuple[float, requests.Response]:
    t0 = time.perf_counter()
    r = requests.post(
        f"{server.url}/infer/{model}",
        params={"image": image_id, "output": output},
        files={"params": (None, json.dumps(INFER_PARAMS), "application/json")},
        timeout=timeout,
    )
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{server.name}: /infer/{model} gave HTTP {r.status_code}: {r.text[:500]}")
    return elapsed, r


def check_label(content: bytes, image: Path) -> str:
    """The returned NRRD has the image's voxel grid and is uint8 (the OHIF/Slicer contract)."""
    import SimpleITK as sitk

    with tempfile.NamedTemporaryFile(suffix=".nrrd") as f:
        f.write(content)
        f.flush()
        lab = sitk.ReadImage(f.name)
    img = sitk.ReadImage(str(image))
    same = lab.GetSize() == img.GetSize() and np.allclose(lab.GetSpacing(), img.GetSpacing(), atol=1e-4)
    return f"{lab.GetSize()} {lab.GetPixelIDTypeAsString()}" + ("" if same else f" (image is {img.GetSize()}!)")


class CpuShare:
    """CPU time used by processes other than the server tree and this bench, over a window, in cores.

    Other work on the machine (tests, builds) slows the server down: this says how much there was.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.t0 = time.perf_counter()
        self.sys0, self.own0 = self._busy(), self._own()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

    def _own(self) -> float:
        total = 0.0
        procs = [psutil.Process()]
        try:
            root = psutil.Process(self.pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        for p in procs:
            try:
                c = p.cpu_times()  # children_*: exited children it waited for (e.g. the training subprocess)
                total += c.user + c.system + c.children_user + c.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    def cores(self) -> dict:
        wall = time.perf_counter() - self.t0
        sys_busy, own = self._busy() - self.sys0, self._own() - self.own0
        return {"server_and_bench_cores": own / wall, "other_processes_cores": max(0.0, sys_busy - own) / wall}


def wait_quiet(max_wait: float, threshold: float = 0.3, window: float = 3.0) -> float:
    """Waits (up to ``max_wait`` s) until other processes use under ``threshold`` cores; returns their last use."""
    deadline = time.perf_counter() + max_wait
    while True:
        probe = CpuShare(os.getpid())
        time.sleep(window)
        other = probe.cores()["other_processes_cores"]
        if other < threshold or time.perf_counter() >= deadline:
            if other >= threshold:
                log(f"machine still busy ({other:.1f} cores used by other processes): measuring anyway")
            return other
        log(f"other processes use {other:.1f} cores: waiting for a quieter machine")


def measure_infer(server: Server, model: str, image_id: str, image: Path, repeats: int, timeout: float) -> dict:
    """First call, ``repeats`` warm calls (output=image), then one output=json call for stage latencies."""
    s = server.sampler
    idle = s.tree_rss()
    wait_quiet(server.quiet_wait)
    s.reset_peak()
    cpu = CpuShare(server.proc.pid)
    if repeats == 0:
        # one call only (a very slow system): output=all returns the label and the stage latencies together
        from requests_toolbelt.multipart.decoder import MultipartDecoder

        first_cpu = CpuShare(server.proc.pid)
        first, r = infer(server, model, image_id, "all", timeout)
        first_other = first_cpu.cores()["other_processes_cores"]
        parts = {}
        for part in MultipartDecoder.from_response(r).parts:
            disposition = part.headers.get(b"Content-Disposition", b"").decode()
            parts[re.search(r'name="([^"]+)"', disposition).group(1)] = part.content
        result = check_label(parts["image"], image)
        stages, t_json = json.loads(parts["params"]).get("latencies", {}), None
        log(f"{server.name}: single output=all call {first:.2f} s -> {result}, server latencies {stages}")
        warm, warm_other = [], []
    else:
        first_cpu = CpuShare(server.proc.pid)
        first, r = infer(server, model, image_id, "image", timeout)
        first_other = first_cpu.cores()["other_processes_cores"]
        result = check_label(r.content, image)
        log(f"{server.name}: first call {first:.2f} s -> {result}, {len(r.content) / 1e6:.2f} MB, "
            f"other processes {first_other:.1f} cores")
        warm, warm_other = [], []
        for i in range(repeats):
            call_cpu = CpuShare(server.proc.pid)
            t, r = infer(server, model, image_id, "image", timeout)
            warm.append(t)
            warm_other.append(call_cpu.cores()["other_processes_cores"])
            log(f"{server.name}: warm call {i + 1}/{repeats} {t:.2f} s (tree RSS peak so far {s.peak / GB:.2f} GB, "
                f"other processes {warm_other[-1]:.1f} cores)")
        t_json, r = infer(server, model, image_id, "json", timeout)
        stages = r.json().get("latencies", {})
        log(f"{server.name}: output=json call {t_json:.2f} s, server latencies {stages}")
    time.sleep(0.3)
    return {
        "first_s": first,
        "first_other_cores": first_other,
        "warm_s": warm,
        "warm_median_s": statistics.median(warm) if warm else None,
        "warm_min_s": min(warm) if warm else None,
        "warm_other_cores": warm_other,
        "cpu": cpu.cores(),
        "loadavg_after": os.getloadavg(),
        "json_call_s": t_json,
        "stage_latencies": stages,
        "peak_rss_gb": s.peak / GB,
        "idle_rss_gb": idle / GB,
        "vmhwm_gb": (server.hwm_bytes() or 0) / GB,
        "start_s": server.start_s,
        "result": result,
    }


# ---------------------------------------------------------------------------------------------- systems


# MONAI Label's radiology `segmentation` config: its label names (ids renumbered 1..25) and its network,
# SegResNet(init_filters=32, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), dropout_prob=0.2), 26 outputs,
# 1.5 mm grid, 96^3 windows. --same-network serves exactly that network through our server.
REFERENCE_LABELS = [
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "aorta", "inferior_vena_cava",
    "portal_vein_and_splenic_vein", "pancreas", "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left",
    "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus",
    "trachea", "heart_myocardium", "heart_atrium_left", "heart_ventricle_left", "heart_atrium_right",
    "heart_ventricle_right", "pulmonary_artery",
]
SAME_NETWORK_APP = f"""# Generated by bench/infer_latency.py --same-network: our server, MONAI Label's radiology network.
from medlabel.app import medlabel_app
from medlabel.spec import CTWindow, ModelSpec, NetworkSpec

LABELS = {REFERENCE_LABELS!r}

App = medlabel_app(
    name="medlabel-bench-segresnet",
    specs=[
        ModelSpec(
            name="segresnet_ct",
            labels={{name: i for i, name in enumerate(LABELS, start=1)}},
            spacing_mm=(1.5, 1.5, 1.5),
            roi_size=(96, 96, 96),
            intensity=CTWindow(),
            network=NetworkSpec(arch="segresnet", channels=(32, 64, 128, 256), dropout=0.2),
        )
    ],
)
"""


@dataclass(frozen=True)
class Ours:
    """One of our configurations: an app folder and the model to call."""

    system: str
    model: str
    label: str

    def app_dir(self, work: Path) -> Path:
        if self.system == "ours":
            return REPO / "apps" / "radiology"
        app = work / "app-segresnet"
        if not (app / "main.py").exists():
            app.mkdir(parents=True, exist_ok=True)
            (app / "main.py").write_text(SAME_NETWORK_APP)
        return app


OURS = {
    "ours": Ours("ours", "liver_ct", "medlabel liver_ct (UNet, 3 classes, 48^3 windows)"),
    "ours-segresnet": Ours("ours-segresnet", "segresnet_ct",
                           "medlabel, the reference's network (SegResNet, 26 classes, 96^3 windows)"),
}
REFERENCE_LABEL = "MONAI Label radiology `segmentation` (SegResNet, 26 classes, 96^3 windows)"


def our_server(work: Path, studies: Path, tag: str, rss_limit_gb: float, ours: Ours = OURS["ours"]) -> Server:
    from medlabel.spec import AppSettings

    conf = {"model_dir": str(work / f"models-{tag}"), "models": ours.model}
    if "retrain_after" in AppSettings.model_fields:
        conf["retrain_after"] = "0"  # the bench starts training itself, with its own epoch count
    return Server(
        name="medlabel",
        app=ours.app_dir(work),
        studies=studies,
        conf=conf,
        log_path=work / f"server-medlabel-{tag}.log",
        rss_limit_gb=rss_limit_gb,
    )


def reference_server(work: Path, studies: Path, tag: str, overlay: Path, rss_limit_gb: float) -> Server:
    return Server(
        name="monailabel-radiology",
        app=overlay / "apps" / "radiology",
        studies=studies,
        conf={"models": "segmentation", "use_pretrained_model": "false", "scribbles": "false", "sam2": "false"},
        log_path=work / f"server-reference-{tag}.log",
        env_extra={"PYTHONPATH": f"{overlay / 'site'}:{overlay / 'sitecustomize'}"},
        rss_limit_gb=rss_limit_gb,
        start_timeout=300.0,
    )


def prepare_reference(overlay: Path) -> None:
    log("preparing the reference overlay (bench/reference_env.sh)")
    subprocess.run(["bash", str(REPO / "bench" / "reference_env.sh"), str(overlay)], check=True,
                   stdout=subprocess.DEVNULL)


def run_infer_bench(system: str, volume: str, image: Path, work: Path, args, overlay: Path) -> dict:
    tag = f"{system}-{sum(1 for _ in work.glob('studies-*'))}"
    studies, image_id = studies_with(image, work / f"studies-{tag}")
    if system in OURS:
        ours = OURS[system]
        server, model, timeout = our_server(work, studies, tag, args.rss_limit_gb, ours), ours.model, args.timeout
    else:
        server = reference_server(work, studies, tag, overlay, args.reference_rss_limit_gb)
        model, timeout = "segmentation", args.reference_timeout
    server.quiet_wait = args.quiet_wait
    server.min_available_gb = args.min_available_gb
    repeats = {"ours": args.repeats, "ours-segresnet": args.same_network_repeats,
               "reference": args.reference_repeats}[system]
    repeats = args.repeats if repeats is None else repeats
    t0 = time.perf_counter()
    try:
        with server:
            out = measure_infer(server, model, image_id, image, repeats, timeout)
            out["command"] = server.command
    except Exception as e:  # one failing system must not lose the others' numbers
        log(f"{system} on {volume} failed: {e}")
        out = {"error": str(e), "peak_rss_gb": server.sampler.peak / GB if server.sampler else None}
        if server.sampler and server.sampler.killed_at:
            out["error"] += f" (killed by the bench at {server.sampler.killed_at / GB:.1f} GB)"
    out.update(system=system, volume=volume, wall_s=time.perf_counter() - t0, log=str(server.log_path))
    return out


# ---------------------------------------------------------------------------------------------- training


EPOCH_RE = re.compile(r"(SupervisedTrainer|SupervisedEvaluator)\S*\s+-\s+Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)")


def run_train_bench(data_dir: Path, work: Path, epochs: int, args) -> dict:
    studies = work / "studies-train"
    shutil.copytree(data_dir / "demo" / "studies" / "liver-ct", studies)
    truth = data_dir / "demo" / "groundtruth" / "liver-ct"
    server = our_server(work, studies, "train", args.rss_limit_gb)
    t_all = time.perf_counter()
    with server:
        for image_id in TRAIN_IDS:
            with open(truth / f"{image_id}.nii.gz", "rb") as f:
                r = requests.put(
                    f"{server.url}/datastore/label",
                    params={"image": image_id, "tag": "final"},
                    files={"label": (f"{image_id}.nii.gz", f, "application/octet-stream"),
                           "params": (None, json.dumps({"label_info": LABEL_INFO}), "application/json")},
                    timeout=60,
                )
            r.raise_for_status()
        wait_quiet(args.quiet_wait)
        server.sampler.reset_peak()
        cpu = CpuShare(server.proc.pid)
        t0 = time.perf_counter()
        r = requests.post(f"{server.url}/train/liver_ct", json={"max_epochs": epochs}, timeout=60)
        r.raise_for_status()
        status: dict = {}
        while time.perf_counter() - t0 < args.train_timeout:
            time.sleep(1.0)
            status = requests.get(f"{server.url}/train/", timeout=30).json()
            if status.get("status") not in ("SUBMITTED", "QUEUED", "RUNNING"):
                break
        wall = time.perf_counter() - t0
        peak = server.sampler.peak / GB
        cpu_share = cpu.cores()
    if status.get("status") != "DONE":
        return {"error": f"training ended with {status.get('status')}", "status": status, "wall_s": wall}
    stats = json.loads((work / "models-train" / "liver_ct" / "train" / "train_stats.json").read_text())
    h, m, s = (float(x) for x in stats["total_time"].split(":"))
    total = 3600 * h + 60 * m + s
    n = int(stats.get("epoch") or stats.get("epochs") or epochs)
    iterations = int(stats.get("current_iteration") or 0)  # optimizer steps over the whole run
    engine_times: dict[str, list[float]] = {"SupervisedTrainer": [], "SupervisedEvaluator": []}
    for engine, _, a, b, c in EPOCH_RE.findall(server.log_path.read_text()):
        engine_times[engine].append(3600 * int(a) + 60 * int(b) + float(c))
    train_t, eval_t = engine_times["SupervisedTrainer"], engine_times["SupervisedEvaluator"]
    return {
        "epochs": n,
        "total_time_s": total,
        "s_per_epoch": total / n,
        "post_to_done_wall_s": wall,
        "trainer_epoch_s": train_t,
        "evaluator_epoch_s": eval_t,
        "trainer_epoch_median_s": statistics.median(train_t) if train_t else None,
        "iterations_per_epoch": iterations / n if iterations else None,
        "s_per_iteration": (statistics.median(train_t) - (statistics.median(eval_t) if eval_t else 0))
        / (iterations / n) if iterations and train_t else None,
        "evaluator_epoch_median_s": statistics.median(eval_t) if eval_t else None,
        "labelled_images": len(TRAIN_IDS),
        "peak_rss_gb": peak,
        "cpu": cpu_share,
        "best_metric": stats.get("best_metric"),
        "log": str(server.log_path),
        "all_s": time.perf_counter() - t_all,
    }


# ---------------------------------------------------------------------------------------------- in-process stages


def load_spec(app_dir: Path, model: str):
    """The ModelSpec named ``model`` from an app's main.py."""
    import importlib.util

    spec_file = importlib.util.spec_from_file_location(f"bench_app_{model}", app_dir / "main.py")
    module = importlib.util.module_from_spec(spec_file)
    spec_file.loader.exec_module(module)
    for value in vars(module).values():
        for s in getattr(value, "SPECS", None) or []:
            if s.name == model:
                return s
    raise LookupError(f"no model '{model}' in {app_dir}/main.py")


def network_sizes(work: Path, systems: list[str]) -> dict[str, int]:
    """Parameter counts of the networks compared (the reference's built with its own arguments)."""
    from monai.networks.nets import SegResNet

    from medlabel.kinds.segmentation.network import build_network

    sizes = {}
    for system in systems:
        if system in OURS:
            net = build_network(load_spec(OURS[system].app_dir(work), OURS[system].model))
        else:
            net = SegResNet(spatial_dims=3, in_channels=1, out_channels=len(REFERENCE_LABELS) + 1, init_filters=32,
                            blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), dropout_prob=0.2)
        sizes[system] = sum(p.numel() for p in net.parameters())
    return sizes


def profile_stages(image: Path, work: Path, ours: Ours = OURS["ours"]) -> dict:
    """Our inference path step by step, in this process (no server), to split 'pre' into its parts."""
    import torch

    from medlabel.continual.store import ModelStore
    from medlabel.io.resample import probabilities_to_label
    from medlabel.io.writer import write_label
    from medlabel.kinds.segmentation.predictor import Predictor
    from medlabel.kinds.segmentation.transforms import infer_transforms

    spec = load_spec(ours.app_dir(work), ours.model)
    predictor = Predictor(ModelStore(work / f"models-profile-{ours.system}", spec))
    device = torch.device("cpu")
    predictor.network(device)

    def once() -> dict:
        times: dict[str, float] = {}
        data = {"image": str(image)}
        for t in infer_transforms(spec).transforms:
            t0 = time.perf_counter()
            data = t(data)
            times[type(t).__name__] = time.perf_counter() - t0
        img = data["image"]
        t0 = time.perf_counter()
        logits = predictor.logits(img, predictor.network(device), device)
        times["network (sliding window)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        prob = torch.softmax(logits, dim=0)
        times["softmax"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        label = probabilities_to_label(prob, img.affine.numpy(), img.meta["original_affine"],
                                       tuple(int(s) for s in img.meta["spatial_shape"]))
        times["restore (resample + argmax)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        path = write_label(label, img.meta["original_affine"], ".nrrd", "uint8")
        times["write (.nrrd)"] = time.perf_counter() - t0
        os.unlink(path)
        times["_model_grid"] = list(img.shape[1:])
        return times

    once()  # warm-up (lazy imports, allocator)
    return once()


# ---------------------------------------------------------------------------------------------- report


def fmt(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def report(results: dict) -> str:
    lines = []
    rows = results["infer"]
    lines += [
        f"Machine: {results['machine']}",
        f"Code: {results.get('code', '?')}",
        "",
        "| system | volume | first call s | warm median s (n) | warm min s | peak server RSS GB | idle RSS GB | "
        "start s | other load, cores |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = OURS[r["system"]].label if r["system"] in OURS else REFERENCE_LABEL
        if "error" in r:
            lines.append(f"| {name} | {r['volume']} | failed after {r['wall_s']:.0f} s (incl. start): "
                         f"{r['error'][:160]} | | | {fmt(r.get('peak_rss_gb'))} | | | |")
            continue
        warm = f"{fmt(r['warm_median_s'])} ({len(r['warm_s'])})" if r["warm_s"] else "- (single call)"
        lines.append(
            f"| {name} | {r['volume']} | {fmt(r['first_s'])} | {warm} | "
            f"{fmt(r['warm_min_s'])} | {fmt(r['peak_rss_gb'])} | {fmt(r['idle_rss_gb'])} | {fmt(r['start_s'], 1)} | "
            f"{fmt(r['cpu']['other_processes_cores'], 1)} |"
        )
    ratios = []
    for vol in dict.fromkeys(r["volume"] for r in rows):
        ref = next((r for r in rows if r["volume"] == vol and r["system"] == "reference" and "error" not in r), None)
        for system in OURS:
            ours = next((r for r in rows if r["volume"] == vol and r["system"] == system and "error" not in r), None)
            if ours and ref:
                # a system measured with a single call (very slow ones): that call stands for its latency
                lat = (ours["warm_median_s"] or ours["first_s"]) / (ref["warm_median_s"] or ref["first_s"])
                mem = ours["peak_rss_gb"] / ref["peak_rss_gb"]
                single = [n for n, r in (("ours", ours), ("reference", ref)) if not r["warm_median_s"]]
                note = f" ({' and '.join(single)}: single call)" if single else ""
                ratios.append((system, vol, lat, mem, note))
    if ratios:
        lines += ["", "| ours | volume | warm latency ours/reference | peak RSS ours/reference | "
                  "target (<= 0.5 both) |", "|---|---|---|---|---|"]
        for system, vol, lat, mem, note in ratios:
            ok = "met" if lat <= 0.5 and mem <= 0.5 else "NOT met"
            lines.append(f"| {OURS[system].label} | {vol} | {lat:.2f}{note} | {mem:.2f} | {ok} |")
    if results.get("network_parameters"):
        lines += ["", "Network parameters: " + ", ".join(
            f"{s} {n / 1e6:.2f} M" for s, n in results["network_parameters"].items())]

    lines += ["", "Server-reported stage latencies (s): the output=json call after the warm calls (or the single output=all call):", "",
              "| system | volume | stages | server total | client-measured call |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            continue
        st = {k: v for k, v in r["stage_latencies"].items() if k != "transform"}
        stages = ", ".join(f"{k} {v:.2f}" for k, v in st.items() if k != "total")
        call = fmt(r["json_call_s"]) if r["json_call_s"] is not None else f"{fmt(r['first_s'])} (the single call)"
        lines.append(f"| {r['system']} | {r['volume']} | {stages} | {fmt(st.get('total'))} | {call} |")
        tr = r["stage_latencies"].get("transform")
        if isinstance(tr, dict):
            parts = []
            for phase, d in tr.items():
                if isinstance(d, dict) and d:
                    parts.append(f"{phase}: " + ", ".join(f"{k} {v:.2f}" for k, v in d.items()))
            if parts:
                lines.append(f"| {r['system']} per transform | {r['volume']} | {'; '.join(parts)} | | |")

    if results.get("profile"):
        lines += ["", "Where our time goes (in-process, warm, same code path as the server):", ""]
        for vol, times in results["profile"].items():  # key: "system | volume"
            grid = times.get("_model_grid")
            total = sum(v for k, v in times.items() if not k.startswith("_"))
            lines += [f"{vol} (model grid {grid}):", "", "| step | s | share |", "|---|---|---|"]
            for k, v in times.items():
                if not k.startswith("_"):
                    lines.append(f"| {k} | {v:.3f} | {100 * v / total:.0f}% |")
            lines += [f"| total | {total:.3f} | |", ""]

    t = results.get("train")
    if t:
        lines += ["", "| training (liver_ct) | epochs | s per epoch (train_stats total_time / epochs) | "
                  "trainer epoch (incl. validation) median s | validation median s | iterations per epoch | "
                  "s per iteration | POST to DONE wall s | peak server-tree RSS GB | other load, cores |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        if "error" in t:
            lines.append(f"| failed: {t['error']} | | | | | | | | | |")
        else:
            lines.append(f"| {t['labelled_images']} labelled 64^3 octants (3 train, 1 val) | {t['epochs']} | "
                         f"{t['s_per_epoch']:.1f} | {fmt(t['trainer_epoch_median_s'])} | "
                         f"{fmt(t['evaluator_epoch_median_s'])} | {fmt(t['iterations_per_epoch'], 0)} | "
                         f"{fmt(t['s_per_iteration'])} | {t['post_to_done_wall_s']:.1f} | "
                         f"{t['peak_rss_gb']:.2f} | {t['cpu']['other_processes_cores']:.1f} |")
    lines += ["", "'other load, cores': CPU used by processes other than the measured server and this bench during "
              f"the measurement, in cores (this machine has {os.cpu_count()})."]
    return "\n".join(lines)


def code_state() -> str:
    """The commit measured, and whether the working tree differed from it."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "lib", "apps").splitlines()]
    return f"{rev}" + (f" + uncommitted changes in {len(dirty)} files under lib/ and apps/" if dirty else "")


def machine() -> str:
    import torch

    mem = psutil.virtual_memory().total / GB
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM, "
            f"torch {torch.__version__} ({'CUDA' if torch.cuda.is_available() else 'CPU'}), "
            f"torch threads {torch.get_num_threads()}, Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", action="store_true", help="also measure MONAI Label's radiology sample app")
    p.add_argument("--big", action="store_true", help="also (or with --only-big, only) a 512x512x200 CT-sized volume")
    p.add_argument("--only-big", action="store_true", help="with --big: skip the demo CT")
    p.add_argument("--repeats", type=int, default=3, help="warm calls per system and volume (median reported)")
    p.add_argument("--same-network-repeats", type=int, help="warm calls for --same-network (default --repeats)")
    p.add_argument("--reference-repeats", type=int,
                   help="warm calls for the reference (default --repeats); 0: a single output=all call, which "
                   "gives the latency and the stage split at once (for the reference on big volumes); "
                   "--same-network-repeats 0 works the same way")
    p.add_argument("--json", type=Path, help="write all numbers here")
    p.add_argument("--no-train", action="store_true", help="skip the training measurement")
    p.add_argument("--train-epochs", type=int, default=5)
    p.add_argument("--no-profile", action="store_true", help="skip the in-process stage split")
    p.add_argument("--skip-ours", action="store_true", help="leave out our liver_ct model (and training)")
    p.add_argument("--same-network", action="store_true",
                   help="also serve the reference's own network (SegResNet, 26 classes, 96^3) through our server")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "medlabel-bench-data",
                   help="where the inputs are built and cached")
    p.add_argument("--overlay", type=Path, default=Path(tempfile.gettempdir()) / "medlabel-ref",
                   help="the reference overlay (bench/reference_env.sh)")
    p.add_argument("--timeout", type=float, default=600, help="per /infer call, our server")
    p.add_argument("--reference-timeout", type=float, default=1200, help="per /infer call, the reference")
    p.add_argument("--train-timeout", type=float, default=900)
    p.add_argument("--rss-limit-gb", type=float, default=12.0, help="kill our server above this tree RSS")
    p.add_argument("--reference-rss-limit-gb", type=float, default=20.0, help="kill the reference above this")
    p.add_argument("--min-available-gb", type=float, default=2.0,
                   help="kill the measured server when the machine's available memory drops below this")
    p.add_argument("--quiet-wait", type=float, default=120.0,
                   help="before each measurement, wait up to this many seconds for other processes to go idle")
    p.add_argument("--clean", action="store_true", help="delete the work folder (server logs, studies) at the end")
    args = p.parse_args(argv)

    def terminated(signum, frame):  # unwind, so that every server this bench started is stopped
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    started = time.perf_counter()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    volumes = build_inputs(args.data_dir, args.big)
    if args.big and args.only_big:
        volumes = {k: v for k, v in volumes.items() if "512" in k}
    if args.reference:
        prepare_reference(args.overlay)
    work = Path(tempfile.mkdtemp(prefix="medlabel-bench-"))
    log(f"work folder {work}")
    results: dict = {"machine": machine(), "code": code_state(), "argv": sys.argv, "volumes": {k: str(v) for k, v in volumes.items()},
                     "infer": [], "profile": {}}
    try:
        systems = ([] if args.skip_ours else ["ours"]) + (["ours-segresnet"] if args.same_network else [])
        systems += ["reference"] if args.reference else []
        results["network_parameters"] = network_sizes(work, systems)
        for volume, image in volumes.items():
            for system in systems:
                results["infer"].append(run_infer_bench(system, volume, image, work, args, args.overlay))
        if not args.no_profile:
            for system in [s for s in systems if s in OURS]:
                for volume, image in volumes.items():
                    wait_quiet(args.quiet_wait)
                    log(f"in-process stage split of {system} on {volume}")
                    results["profile"][f"{system} | {volume}"] = profile_stages(image, work, OURS[system])
        if not args.no_train and not args.skip_ours:
            log(f"training liver_ct for {args.train_epochs} epochs")
            results["train"] = run_train_bench(args.data_dir, work, args.train_epochs, args)
    finally:
        results["bench_wall_s"] = time.perf_counter() - started
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, default=str))
        if args.clean:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"server logs and studies kept in {work}")
        if sys.exc_info()[0] is not None:  # interrupted: still show what was measured
            print(report(results), flush=True)
    print(report(results))
    print(f"\n(bench wall time {results['bench_wall_s']:.0f} s)")
    return 0 if not any("error" in r for r in results["infer"]) else 1


if __name__ == "__main__":
    sys.exit(main())
