"""Generation benchmark: restoration quality against baselines, time and memory per volume, and
synthesis time and memory per sample against the number of DDIM steps, on the real demo CT.

    python bench/generation.py [--epochs 5] [--iterations 40] [--synth-epochs 4] [--out /tmp/medlabel-bench-generation]

Restoration models are trained exactly as the server trains them (``RestorationTrain`` on a local
datastore of six demo octants); two octants are held out and never seen. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import SimpleITK as sitk
import torch

from medlabel.continual.store import ModelStore
from medlabel.datastore.local import CheckedLocalDatastore
from medlabel.demo.build import build
from medlabel.kinds.generation.degrade import crop_to_factor, degrade_for_network, name_seed, thicken
from medlabel.kinds.generation.metrics import baselines, compare
from medlabel.kinds.generation.restore import Restorer, restore_window, to_window
from medlabel.kinds.generation.spec import (
    RESTORATION_TRAIN,
    SMALL_TRAIN,
    Denoise,
    DiffusionNetwork,
    RestorationSpec,
    SuperResolution,
    SynthesisSpec,
)
from medlabel.kinds.generation.synthesis import Synthesizer
from medlabel.kinds.generation.synthesis_train import SynthesisTrain
from medlabel.kinds.generation.train import RestorationTrain
from medlabel.spec import AppSettings

HELD_OUT = ("lits117_subvolume_x1y1z0", "lits117_subvolume_x1y0z1")


class PeakRSS:
    """Peak resident memory of this process while the block runs, sampled every 5 ms (MiB above the start)."""

    def __enter__(self):
        self.process, self.start, self.peak, self._stop = psutil.Process(), psutil.Process().memory_info().rss, 0, False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self):
        while not self._stop:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self._stop = True
        self.thread.join()
        self.mib = max(0, self.peak - self.start) / 2**20


def train(spec, studies: Path, models: Path, epochs: int, trainer_class) -> ModelStore:
    store = ModelStore(models, spec)
    (Synthesizer if isinstance(spec, SynthesisSpec) else Restorer)(store)
    datastore = CheckedLocalDatastore(str(studies), extensions=["*.nii.gz"])
    t0 = time.perf_counter()
    trainer_class(store, AppSettings())({"max_epochs": epochs, "multi_gpu": False}, datastore)
    print(f"trained {spec.name}: {epochs} epochs in {time.perf_counter() - t0:.0f} s; serving v{store.serving_version()}")
    return store


def restoration_table(spec: RestorationSpec, store: ModelStore, held_out: list[Path], levels: list[float]) -> None:
    restorer = Restorer(store)
    network = restorer.network(torch.device("cpu"))
    names = ("noisy",) if isinstance(spec.degradation, Denoise) else ("trilinear", "cubic")
    print(f"\n{spec.name} (v{store.serving_version()}) on {len(held_out)} held-out octants, HU window "
          f"{spec.window.hu_min:g}..{spec.window.hu_max:g}\n")
    print("| level | " + " | ".join(f"PSNR {n}" for n in names) + " | PSNR model | "
          + " | ".join(f"SSIM {n}" for n in names) + " | SSIM model | s / volume | peak MiB |")
    print("|---|" + "---|" * (2 * len(names) + 4))
    for level in levels:
        rows, times, mems = [], [], []
        for path in held_out:
            hu = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0).astype(np.float32)
            clean = to_window(hu, spec)[None]
            x, target = degrade_for_network(clean, spec.degradation, spec.window, level,
                                            torch.Generator().manual_seed(name_seed(path)))
            degraded = x[:1] if isinstance(spec.degradation, Denoise) else thicken(clean, int(level))
            with PeakRSS() as m:
                restored = restore_window(network, degraded, spec, level, torch.device("cpu"))
            times.append(m.seconds), mems.append(m.mib)
            rows.append(compare(restored, baselines(x, degraded, spec, level), target))
        mean = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
        unit = " HU" if isinstance(spec.degradation, Denoise) else "x"
        print(f"| {level:g}{unit} | " + " | ".join(f"{mean['psnr_' + n]:.2f}" for n in names) + f" | {mean['psnr']:.2f} | "
              + " | ".join(f"{mean['ssim_' + n]:.4f}" for n in names) + f" | {mean['ssim']:.4f} | "
              f"{np.mean(times):.2f} | {np.mean(mems):.0f} |")


def synthesis_table(spec: SynthesisSpec, store: ModelStore, masks: list[Path], images: list[Path],
                    steps_list: list[int]) -> None:
    """Time and memory per sample against DDIM steps; quality as the per-label HU statistics distance:
    mean over labels of |mean HU synthetic - mean HU real| in the same mask (a simple feature distance)."""
    synthesizer = Synthesizer(store)
    print(f"\n{spec.name} (v{store.serving_version()}) on {len(masks)} held-out masks\n")
    print("| DDIM steps | s / sample | peak MiB | mean |ΔHU| per label (liver, tumour, background) |")
    print("|---|---|---|---|")
    for steps in steps_list:
        times, mems, dists = [], [], []
        for mask_path, image_path in zip(masks, images):
            mask = sitk.ReadImage(str(mask_path))
            with PeakRSS() as m:
                hu = synthesizer.generate_hu(mask, steps, seed=0, device=torch.device("cpu"))
            times.append(m.seconds), mems.append(m.mib)
            real, labels = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))), sitk.GetArrayFromImage(mask)
            dists.append([abs(hu[labels == i].mean() - real[labels == i].mean()) if (labels == i).any() else np.nan
                          for i in (1, 2, 0)])
        d = np.nanmean(np.array(dists, dtype=float), axis=0)
        print(f"| {steps} | {np.mean(times):.2f} | {np.mean(mems):.0f} | {d[0]:.0f}, {d[1]:.0f}, {d[2]:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="restoration epochs")
    parser.add_argument("--iterations", type=int, default=40, help="restoration batches (of 4 crops) per epoch")
    parser.add_argument("--synth-epochs", type=int, default=4, help="synthesis epochs (of 20 batches of 16 crops)")
    parser.add_argument("--steps", default="5,10,25,50", help="DDIM steps to time")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "medlabel-bench-generation")
    parser.add_argument("--skip-synthesis", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    shutil.rmtree(args.out, ignore_errors=True)
    build(args.out / "demo")
    studies, truth = args.out / "studies", args.out / "demo" / "groundtruth" / "liver-ct"
    shutil.copytree(args.out / "demo" / "studies" / "liver-ct", studies)
    held_out = []
    for name in HELD_OUT:
        held_out.append(args.out / f"{name}.nii.gz")
        shutil.move(studies / f"{name}.nii.gz", held_out[-1])
    restoration_train = RESTORATION_TRAIN.model_copy(update={"max_epochs": args.epochs,
                                                             "iterations_per_epoch": args.iterations})
    synthesis_train = SMALL_TRAIN.model_copy(update={"max_epochs": args.synth_epochs})
    print(f"torch threads {torch.get_num_threads()}; {len(list(studies.glob('*.nii.gz')))} training octants")

    specs = [
        (RestorationSpec(name="ct_denoise", degradation=Denoise(), train=restoration_train), [20.0, 40.0, 60.0]),
        (RestorationSpec(name="ct_superres", degradation=SuperResolution(), train=restoration_train), [2, 4]),
    ]
    for spec, levels in specs:
        store = train(spec, studies, args.out / "models", args.epochs, RestorationTrain)
        restoration_table(spec, store, held_out, levels)

    if not args.skip_synthesis:
        for image in studies.glob("*.nii.gz"):  # masks as final labels, as annotators would submit them
            (studies / "labels" / "final").mkdir(parents=True, exist_ok=True)
            shutil.copy(truth / image.name, studies / "labels" / "final" / image.name)
        spec = SynthesisSpec(name="liver_synth", labels={"liver": 1, "tumour": 2},
                             network=DiffusionNetwork(channels=(16, 32, 64)), train=synthesis_train)
        store = train(spec, studies, args.out / "models", args.synth_epochs, SynthesisTrain)
        synthesis_table(spec, store, [truth / p.name for p in held_out], held_out,
                        [int(s) for s in args.steps.split(",")])


if __name__ == "__main__":
    main()
