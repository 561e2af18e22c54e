"""Classification benchmark: latency per 2D image and 3D volume, Grad-CAM cost, training s/epoch, metrics.

Runs in-process on the demo data (built into a temp folder unless ``--demo DIR`` is given), with the
same predictor, trainer pieces and metrics the server uses, and prints one table per part:

    .venv/bin/python bench/classification.py [--demo demo-data] [--epochs 8] [--repeats 5] [--sets ...]

Sets: ``liver-tiles``, ``brain-tiles`` (2D tiles), ``liver-cubes`` (3D cubes) and ``body-part`` (whole
slices, with per-image results on the real DICOM images (pydicom, pydicom-data) that are never trained on).

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
    "liver-cubes": ClassificationSpec(name="liver_cubes", classes=("liver", "tumour"), multi_label=True, dims=3,
                                      input_size=(32, 32, 32), intensity=CTWindow(),
                                      network=ClassifierNetwork(widths=(8, 16, 32, 64)),
                                      train=TrainSpec(batch_size=8, iterations_per_epoch=10, learning_rate=1e-3)),
    "body-part": ClassificationSpec(name="body_part", classes=("head", "trunk"), dims=2, input_size=(64, 64),
                                    intensity=ZScore(),
                                    train=TrainSpec(batch_size=16, iterations_per_epoch=10, learning_rate=2e-3)),
}
VOLUME = ClassificationSpec(name="tumour_volume", classes=("tumour",), multi_label=True, dims=3, input_size=(48, 48, 48),
                            network=ClassifierNetwork(widths=(8, 16, 32, 64)))
# (model, image) per latency row, keyed by the set whose training the row belongs to
LATENCY = {
    "liver-tiles": [(SPECS["liver-tiles"], "liver-tiles/*.nii.gz"), (VOLUME, "liver-ct/*.nii.gz")],
    "brain-tiles": [(SPECS["brain-tiles"], "brain-tiles/*.nii.gz")],
    "liver-cubes": [(SPECS["liver-cubes"], "liver-cubes/*.nii.gz")],
    "body-part": [(SPECS["body-part"], "body-part/dicom_693_J2KI.nii.gz")],
}


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up (lazy imports, first allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def latency(demo: Path, sets: list[str], repeats: int, work: Path) -> list[tuple]:
    rows = []
    cases = [(spec, next((demo / "studies").glob(pattern))) for name in sets for spec, pattern in LATENCY[name]]
    for arch in ("resnet", "densenet121"):
        for spec, image in cases:
            size = tuple(max(s, 32) for s in spec.input_size) if arch == "densenet121" else spec.input_size
            spec = ClassificationSpec(**{**spec.model_dump(exclude={"labels"}), "input_size": size,
                                         "network": spec.network.model_copy(update={"arch": arch})})
            infer = ClassificationInfer(ClassificationPredictor(ModelStore(work / arch, spec)), "cpu")
            plain, _ = timed(lambda: infer({"image": str(image), "explain": False}), repeats)
            with_map, _ = timed(lambda: infer({"image": str(image)}), repeats)
            rows.append((spec.name, arch, f"{spec.dims}D {'x'.join(map(str, spec.input_size))}", f"{plain * 1000:.0f}",
                         f"{with_map * 1000:.0f}", f"{(with_map - plain) * 1000:.0f}"))
    return rows


def train_and_score(name: str, demo: Path, epochs: int) -> tuple[tuple, list[tuple]]:
    """One row of the training table, and per-image rows for the set's ``real`` split (body-part)."""
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
    real = [i for i, t in truth.items() if t["split"] == "real"]
    real_images = [str(folder / f"{i}.nii.gz") for i in real]

    torch.manual_seed(0)
    net = build_network(spec)
    before = summarise(predict(spec, net.state_dict(), images, "cpu"), target, spec)
    real_before = predict(spec, net.state_dict(), real_images, "cpu") if real else None
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

    def probabilities(p):
        return ", ".join(f"{c} {v:.2f}" for c, v in zip(spec.classes, p))

    per_image = []
    if real:
        real_after = predict(spec, net.state_dict(), real_images, "cpu")
        for n, i in enumerate(real):
            predicted = spec.classes[int(np.argmax(real_after[n]))]
            per_image.append((i, ", ".join(truth[i]["classes"]), probabilities(real_before[n]),
                              probabilities(real_after[n]), predicted))
    unit = "volumes" if spec.dims == 3 else "images"
    row = (name, f"{spec.dims}D {'x'.join(map(str, spec.input_size))}", f"{len(items)} / {len(held)} {unit}",
           f"{t.iterations_per_epoch} x {t.batch_size}", f"{per_epoch:.2f}", auroc(before), auroc(after),
           f"{before['accuracy']:.2f} -> {after['accuracy']:.2f}", f"{before['ece']:.2f} -> {after['ece']:.2f}")
    return row, per_image


def table(header: tuple, rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, help="a built demo-data folder (default: build one in a temp folder)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sets", nargs="+", choices=list(SPECS), default=list(SPECS),
                        help="demo sets to train on, and their models' latency rows (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="medlabel-bench-cls-"))
    demo = args.demo
    if demo is None:
        from medlabel.demo.build import build

        demo = work / "demo"
        build(demo)
    print(f"torch threads {torch.get_num_threads()}, untrained weights, CPU\n")
    print(table(("model", "network", "input", "classify ms", "classify + map ms", "map ms"),
                latency(demo, args.sets, args.repeats, work)))
    print()
    results = [train_and_score(name, demo, args.epochs) for name in args.sets]
    print(table(("set", "input", "train / held-out", "batches x size", "s/epoch", "held-out AUROC before", "after",
                 "accuracy", "ECE"), [row for row, _ in results]))
    real = [r for _, rows in results for r in rows]
    if real:
        print("\nReal DICOM images (split `real`, never trained on), probabilities before and after training:\n")
        print(table(("image", "truth", "before", "after", "predicted"), real))


if __name__ == "__main__":
    main()
