"""How many training steps restoration needs before PSNR rises, for a few training set-ups, on CPU.

    python bench/generation_learning_speed.py dn:current,scaled sr:scaled [--threads 2]

Trains the restoration network outside the server (same network, degradations and crops as
``RestorationTrain``) on seven demo octants and measures PSNR on the held-out octant ``x1y1z0``
(40 HU noise, or 2x thicker slices) after 20, 40 and 80 steps. Prints one JSON line per set-up:
gain over the baseline (noisy input; trilinear slices) in dB at each step count, and seconds per step.
This is how the restoration training defaults (``RESTORATION_TRAIN``, ``unit_hu``) were chosen.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from medlabel.demo.build import build
from medlabel.kinds.generation.degrade import degrade_for_network, network_input, thicken
from medlabel.kinds.generation.metrics import psnr
from medlabel.kinds.generation.network import ResidualRestorer
from medlabel.kinds.generation.restore import restore_window, to_window
from medlabel.kinds.generation.spec import Denoise, RestorationSpec, SuperResolution

HELD_OUT = "lits117_subvolume_x1y1z0"
SETUPS = {  # crops per step, learning rate, UNet input/output scale (window width / unit_hu), UNet widths
    "current": dict(crops=16, lr=2e-3, scale=1.0),  # the defaults before this measurement
    "small-batch": dict(crops=4, lr=2e-3, scale=1.0),
    "scaled": dict(crops=4, lr=5e-3, scale=10.0),  # RESTORATION_TRAIN with unit_hu 200
    "scaled-16": dict(crops=16, lr=5e-3, scale=10.0),
    "scaled-small-unet": dict(crops=4, lr=5e-3, scale=10.0, channels=(16, 32)),
}


def load(path: Path, spec: RestorationSpec) -> torch.Tensor:
    return to_window(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0).astype(np.float32), spec)[None]


def run(task: str, name: str, studies: Path, steps=(20, 40, 80), crops=4, lr=5e-3, scale=10.0,
        channels=(16, 32, 64), roi=32) -> dict:
    deg = Denoise() if task == "dn" else SuperResolution()
    spec = RestorationSpec(name="probe", degradation=deg, roi_size=(roi,) * 3)
    files = sorted(studies.glob("*.nii.gz"))
    volumes = [load(f, spec) for f in files if HELD_OUT not in f.name]
    clean = load(studies / f"{HELD_OUT}.nii.gz", spec)
    if task == "dn":
        level = 40
        degraded = clean + level / spec.window.width * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
        baseline = psnr(degraded, clean)
    else:
        level = 2
        degraded = thicken(clean, level)
        baseline = psnr(network_input(degraded, deg, level)[:1], clean)
    torch.manual_seed(0)
    network = ResidualRestorer(channels, scale=scale)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-5)
    rng, loss_fn = np.random.default_rng(0), torch.nn.L1Loss()
    seconds, gains = 0.0, []
    for step in range(1, max(steps) + 1):
        t0 = time.perf_counter()
        network.train()
        xs, ys = [], []
        for _ in range(crops):
            v = volumes[rng.integers(len(volumes))]
            i, j, k = (int(rng.integers(0, s - roi + 1)) for s in v.shape[1:])
            crop = v[:, i:i + roi, j:j + roi, k:k + roi]
            crop = crop.flip(1) if rng.random() < 0.5 else crop
            crop = crop.flip(2) if rng.random() < 0.5 else crop
            lv = float(rng.uniform(deg.min_noise_hu, deg.max_noise_hu)) if task == "dn" else int(rng.choice(deg.factors))
            x, y = degrade_for_network(crop, deg, spec.window, lv, torch.Generator().manual_seed(int(rng.integers(1 << 30))))
            xs.append(x), ys.append(y)
        loss = loss_fn(network(torch.stack(xs)), torch.stack(ys))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seconds += time.perf_counter() - t0
        if step in steps:
            restored = restore_window(network.eval(), degraded, spec, level, torch.device("cpu"))
            gains.append([step, round(psnr(restored, clean) - baseline, 2)])
    return {"task": task, "setup": name, "baseline_db": round(baseline, 2), "s_per_step": round(seconds / max(steps), 2),
            "gain_db_after_steps": gains}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="TASK:SETUP[,SETUP...] with TASK dn or sr; setups: " + ", ".join(SETUPS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(tempfile.mkdtemp(prefix="medlabel-learning-speed-"))
    build(out)
    for run_ in args.runs:
        task, names = run_.split(":")
        for name in names.split(","):
            print(json.dumps(run(task, name, out / "studies" / "liver-ct", **SETUPS[name])), flush=True)


if __name__ == "__main__":
    main()
