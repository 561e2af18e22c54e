"""Classification benchmark: latency per 2D tile and 3D volume, Grad-CAM cost, training s/epoch, metrics.

Runs in-process on the demo data (built into a temp folder unless ``--demo DIR`` is given), with the
same predictor, trainer pieces and metrics the server uses, and prints one table per part:

    .venv/bin/python bench/classification.py [--demo demo-data] [--epochs 8] [--repeats 5]

Training here is a plain loop over the kind's transforms, network, loss and optimizer (no server and
no subprocess), so s/epoch is the network's cost, not monailabel's start-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset

from medlabel.continual.store import ModelStore
from medlabel.kinds.classification.infer import ClassificationInfer
from medlabel.kinds.classification.metrics import predict, summarise
from medlabel.kinds.classification.labels import target_vector
from medlabel.kinds.classification.network import build_network, parameter_groups
from medlabel.kinds.classification.predictor import ClassificationPredictor
from medlabel.kinds.classification.spec import ClassificationSpec, ClassifierNetwork
from medlabel.kinds.classification.transforms import train_transforms
from medlabel.spec import CTWindow, TrainSpec, ZScore

SPECS = {
    "liver-tiles": ClassificationSpec(name="liver_tiles", classes=("liver", "tumour"), multi_label=True, dims=2,
                                      input_size=(32, 32), intensity=CTWindow(),
                                      train=TrainSpec(batch_size=16, iterations_per_epoch=20, learning_rate=2e-3)),
    "brain-tiles": ClassificationSpec(name="brain_tiles", classes=("brain", "no_brain"), dims=2, input_size=(48, 48),
                                      intensity=ZScore(),
                                      train=TrainSpec(batch_size=16, iterations_per_epoch=20, learning_rate=2e-3)),
}
VOLUME = ClassificationSpec(name="tumour_volume", classes=("tumour",), multi_label=True, dims=3, input_size=(48, 48, 48),
                            network=ClassifierNetwork(widths=(8, 16, 32, 64)))


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up (lazy imports, first allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def latency(demo: Path, repeats: int, work: Path) -> list[tuple]:
    rows = []
    cases = [(SPECS["liver-tiles"], next((demo / "studies" / "liver-tiles").glob("*.nii.gz"))),
             (SPECS["brain-tiles"], next((demo / "studies" / "brain-tiles").glob("*.nii.gz"))),
             (VOLUME, next((demo / "studies" / "liver-ct").glob("*.nii.gz")))]
    for arch in ("resnet", "densenet121"):
        for spec, image in cases:
            spec = spec.model_copy(update={"network": spec.network.model_copy(update={"arch": arch})})
            infer = ClassificationInfer(ClassificationPredictor(ModelStore(work / arch, spec)), "cpu")
            plain, _ = timed(lambda: infer({"image": str(image), "explain": False}), repeats)
            with_map, _ = timed(lambda: infer({"image": str(image)}), repeats)
            rows.append((spec.name, arch, f"{spec.dims}D {'x'.join(map(str, spec.input_size))}", f"{plain * 1000:.0f}",
                         f"{with_map * 1000:.0f}", f"{(with_map - plain) * 1000:.0f}"))
    return rows


def train_and_score(name: str, demo: Path, epochs: int) -> tuple:
    spec = SPECS[name]
    truth = json.loads((demo / "groundtruth" / name / "labels.json").read_text())
    folder = demo / "studies" / name
    labels_dir = Path(tempfile.mkdtemp())
    items = []
    for i, t in truth.items():
        if t["split"] == "train":
            (labels_dir / f"{i}.json").write_text(json.dumps({"classes": t["classes"]}))
            items.append({"image": str(folder / f"{i}.nii.gz"), "label": str(labels_dir / f"{i}.json")})
    held = [i for i, t in truth.items() if t["split"] == "heldout"]
    target = np.stack([target_vector(truth[i]["classes"], spec) for i in held])
    images = [str(folder / f"{i}.nii.gz") for i in held]

    torch.manual_seed(0)
    net = build_network(spec)
    before = summarise(predict(spec, net.state_dict(), images, "cpu"), target, spec)
    t = spec.train
    sampler = torch.utils.data.RandomSampler(items, replacement=True, num_samples=t.iterations_per_epoch * t.batch_size)
    loader = DataLoader(Dataset(items, train_transforms(spec)), batch_size=t.batch_size, sampler=sampler)
    optimizer = torch.optim.AdamW(parameter_groups(net, spec, t.learning_rate), weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss() if spec.multi_label else torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for batch in loader:
            optimizer.zero_grad()
            loss_fn(net(batch["image"]), batch["label"]).backward()
            optimizer.step()
    per_epoch = (time.perf_counter() - start) / epochs
    after = summarise(predict(spec, net.state_dict(), images, "cpu"), target, spec)

    def auroc(m):
        return " / ".join("-" if v is None else f"{v:.2f}" for v in m["auroc"].values())

    return (name, len(items), len(held), f"{per_epoch:.2f}", auroc(before), auroc(after),
            f"{before['accuracy']:.2f} -> {after['accuracy']:.2f}", f"{before['ece']:.2f} -> {after['ece']:.2f}")


def table(header: tuple, rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, help="a built demo-data folder (default: build one in a temp folder)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="medlabel-bench-cls-"))
    demo = args.demo
    if demo is None:
        from medlabel.demo.build import build

        demo = work / "demo"
        build(demo)
    print(f"torch threads {torch.get_num_threads()}, untrained weights, CPU\n")
    print(table(("model", "network", "input", "classify ms", "classify + map ms", "map ms"), latency(demo, args.repeats, work)))
    print()
    rows = [train_and_score(name, demo, args.epochs) for name in SPECS]
    print(table(("set", "train tiles", "held-out tiles", "s/epoch (20 batches of 16)", "held-out AUROC before",
                 "after", "accuracy", "ECE"), rows))


if __name__ == "__main__":
    main()
