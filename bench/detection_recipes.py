"""How fast the lesion detector learns under other training settings, in one process (no server).

    .venv/bin/python bench/detection_recipes.py [--iters 1000] [--eval-every 500] [--lr 5e-3] [--seed 0] \
        [--set spacing_mm=[1.5,1.5,1.5]] [--set widths=[16,32,64]] [--set seg_weight=1] \
        [--set '"cls_loss"="focal"'] [--data DEMO_DIR]

Builds the demo studies, takes ``liver_lesions`` from ``apps/radiology`` (``--set key=json`` overrides a
spec field), trains the RetinaNet with AdamW steps (cosine schedule over ``--iters``, as the trainer's over its epochs)
on the training octants (real and synthetic
copies, the same transforms and detector as the server's trainer) and prints, every ``--eval-every``
steps, the CPM and sensitivity at 8 FP/volume on the held-out real octants and on the training octants'
own real lesions: whether the detector generalises, or does not even fit what it was shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "apps" / "radiology"))

from monai.data import DataLoader, Dataset  # noqa: E402
from monai.data.utils import no_collation  # noqa: E402
from torch.utils.data import RandomSampler  # noqa: E402

from main import RadiologyApp  # noqa: E402
from medlabel.demo.build import build  # noqa: E402
from medlabel.demo.detection import HELD_OUT, STUDY  # noqa: E402
from medlabel.kinds.detection.network import build_detector, build_network, detection_loss  # noqa: E402
from medlabel.kinds.detection.train import _samples, evaluate  # noqa: E402
from medlabel.kinds.detection.transforms import train_transforms  # noqa: E402


def spec_with(overrides: list[str]):
    spec = next(s for s in RadiologyApp.SPECS if s.kind == "detection")
    update = dict((k, json.loads(v)) for k, v in (kv.split("=", 1) for kv in overrides))
    return type(spec).model_validate({**spec.model_dump(), **update})  # validated: nested fields get their types


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="spec field override, key=json")
    p.add_argument("--data", type=Path, help="an already built demo folder (default: build one)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    spec = spec_with(args.set)
    print(" ".join(sys.argv[1:]), flush=True)

    work = args.data
    if work is None:
        work = Path(tempfile.mkdtemp(prefix="medlabel-det-recipes-"))
        build(work)
    items = [{"image": str(i), "label": str(work / "groundtruth" / STUDY / f"{i.name[:-7]}.json")}
             for i in sorted((work / "studies" / STUDY).glob("*.nii.gz"))]
    held = [d for d in items if Path(d["image"]).name[:-7] in HELD_OUT]
    train = [d for d in items if d not in held]
    real_train = [d for d in train if "synthetic" not in d["image"]]

    network = build_network(spec)
    detector = build_detector(spec, network)
    optimizer = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.iters)
    dataset = Dataset(train, train_transforms(spec))
    loader = DataLoader(dataset, batch_size=args.batch, collate_fn=no_collation,
                        sampler=RandomSampler(dataset, replacement=True, num_samples=args.iters * args.batch))
    cpu = torch.device("cpu")

    def report(step: int) -> None:
        weights = {k: v.detach().clone() for k, v in network.state_dict().items()}
        h, t = evaluate(spec, weights, held, cpu), evaluate(spec, weights, real_train, cpu)
        print(f"step {step}: held-out CPM {h['cpm']:.3f} sens@8 {h['sensitivity'][8.0]:.2f} | "
              f"training octants' real lesions CPM {t['cpm']:.3f} sens@8 {t['sensitivity'][8.0]:.2f}", flush=True)

    start, losses = time.time(), []
    report(0)
    for step, batch in enumerate(loader, 1):
        samples = _samples(batch)
        detector.train()
        optimizer.zero_grad()
        loss = detection_loss(spec, detector, [s["image"].as_tensor() for s in samples],
                              [{"box": s["box"], "box_label": s["box_label"]} for s in samples])
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            print(f"step {step}: loss {np.mean(losses[-50:]):.3f}, {time.time() - start:.0f} s", flush=True)
        if step % args.eval_every == 0:
            report(step)


if __name__ == "__main__":
    main()
