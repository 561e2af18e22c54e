"""Lesion detection benchmark: latency and peak memory per volume, training seconds per epoch, metrics.

    .venv/bin/python bench/detection.py [--epochs 30] [--device auto] [--json OUT]

Offline and in one process (no server, so the figures are the model's own): builds the demo studies
(``medlabel.demo``), then

1. trains ``liver_lesions`` (the spec in ``apps/radiology``) on the training octants' reference boxes, the
   real ones and their ``synthetic_*`` copies, through the same ``DetectionTrain`` the server runs;
2. times detection (pre-processing + sliding-window RetinaNet + NMS) on every real octant, first call and
   warm calls, and the peak resident memory of the process (and peak CUDA memory on a GPU);
3. scores the untrained (version 0) and trained weights on the held-out real octants (no synthetic copy
   was made of them): FROC sensitivity at 1/8 .. 8 false positives per volume, CPM, mAP at IoU 0.1.

Prints markdown tables; ``--json OUT`` writes every number.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from medlabel.continual.store import ModelStore  # noqa: E402
from medlabel.demo.build import build  # noqa: E402
from medlabel.demo.detection import HELD_OUT, STUDY  # noqa: E402
from medlabel.kinds.detection.predictor import DetectionPredictor  # noqa: E402
from medlabel.kinds.detection.train import DetectionTrain, evaluate  # noqa: E402
from medlabel.runtime import pick_device  # noqa: E402
from medlabel.spec import AppSettings  # noqa: E402


def app_spec():
    sys.path.insert(0, str(REPO / "apps" / "radiology"))
    import main  # the app's own spec, so the benchmark measures what is served

    return next(s for s in main.RadiologyApp.SPECS if s.kind == "detection")


class Datastore:
    """The little of a monailabel datastore that training reads: image/label pairs."""

    def __init__(self, items: list[dict]):
        self.items = items

    def datalist(self):
        return self.items


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="warm detection calls per volume")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medlabel-bench-detection-"))
    build(work / "demo")
    studies, truth = work / "demo" / "studies" / STUDY, work / "demo" / "groundtruth" / STUDY
    pair = lambda i: {"image": str(studies / f"{i}.nii.gz"), "label": str(truth / f"{i}.json")}  # noqa: E731
    ids = sorted(p.name.removesuffix(".nii.gz") for p in studies.glob("*.nii.gz"))
    train_ids = [i for i in ids if i.removeprefix("synthetic_") not in HELD_OUT]
    spec = app_spec()
    device = pick_device(args.device)
    store = ModelStore(work / "models", spec)
    predictor = DetectionPredictor(store)

    # 1. training
    task = DetectionTrain(store, AppSettings(max_epochs=args.epochs))
    start = time.perf_counter()
    task({"name": "bench", "device": str(device), "multi_gpu": False}, Datastore([pair(i) for i in train_ids]))
    train_s = time.perf_counter() - start
    stats = json.loads((store.train_dir / "train_stats.json").read_text())

    # 2. latency and memory, with the trained weights
    latency = {}
    for image_id in [i for i in ids if not i.startswith("synthetic_")]:
        times = []
        for _ in range(1 + args.repeats):
            t = time.perf_counter()
            data = predictor.preprocess(pair(image_id)["image"])
            predictor.detect(data["image"], device)
            times.append(time.perf_counter() - t)
        latency[image_id] = {"first_s": times[0], "warm_median_s": statistics.median(times[1:] or times)}
    memory = {"peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        memory["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20

    # 3. metrics on the held-out real lesions
    held = [pair(i) for i in HELD_OUT]
    before = evaluate(spec, store.load_version(0), held, device)
    after = evaluate(spec, store.load_serving()["model"], held, device)

    print(f"\n## Detection benchmark ({device}, torch {torch.__version__}, {torch.get_num_threads()} threads)\n")
    epochs = int(stats["epoch"])  # fewer than asked when the spec's max_minutes cap ended training
    print(f"Training: {len(train_ids)} labelled images, {epochs} of {args.epochs} epochs (cap "
          f"{spec.train.max_minutes} min) of {spec.train.iterations_per_epoch} batches of {spec.train.batch_size}: "
          f"{train_s:.1f} s with validation, {train_s / epochs:.2f} s/epoch; gate: {stats['gate']['reason']}\n")
    print("| volume | first call s | warm median s |\n|---|---|---|")
    for image_id, t in latency.items():
        print(f"| {image_id} | {t['first_s']:.2f} | {t['warm_median_s']:.2f} |")
    print(f"\nPeak memory: {memory['peak_rss_mb']:.0f} MB RSS (whole process, training included)"
          + (f", {memory['peak_cuda_mb']:.0f} MB CUDA" if "peak_cuda_mb" in memory else "") + "\n")
    rates = list(before["sensitivity"])
    print(f"Held-out real lesions: {after['lesions']} in {after['images']} octants\n")
    print("| weights | " + " | ".join(f"sens@{r:g}" for r in rates) + " | CPM | mAP@0.1 |")
    print("|---|" + "---|" * (len(rates) + 2))
    for name, m in (("untrained (v0)", before), ("trained", after)):
        print(f"| {name} | " + " | ".join(f"{m['sensitivity'][r]:.2f}" for r in rates)
              + f" | {m['cpm']:.3f} | {m['map_iou_0.1']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"train_s": train_s, "epochs": epochs, "latency": latency,
                                         "memory": memory, "before": before, "after": after}, indent=1, default=str))


if __name__ == "__main__":
    main()
