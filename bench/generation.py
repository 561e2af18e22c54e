"""Generation benchmark: restoration quality against baselines, time and memory per volume, and
synthesis time and memory per sample against the number of DDIM steps, on the real demo CT.

    python bench/generation.py [--part all|restoration|synthesis|cost] [--epochs 5] [--iterations 40]
                               [--synth-epochs 10] [--synth-models DIR] [--seeds 3] [--skip-pairs]
                               [--out /tmp/medlabel-bench-generation]

Restoration models are trained exactly as the server trains them (``RestorationTrain`` on a local
datastore of six demo octants); two octants are held out and never seen. The synthesis model is
trained the same way (``SynthesisTrain``, the six octants' masks as final labels) and judged by a
segmentation model: its Dice on synthetic images of the held-out masks against its Dice on the real
held-out images, and the held-out Dice of small segmentation training sets with and without synthetic
pairs. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import ctypes
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
import torch.nn.functional as F
from scipy.stats import wasserstein_distance
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

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
    """Peak resident memory of this process while the block runs, sampled every 5 ms (MiB above the start).

    Memory freed earlier (training) is first returned to the system (glibc ``malloc_trim``); otherwise
    the block would reuse it without the resident size growing, and the figure would read 0.
    """

    def __enter__(self):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
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
    print(f"trained {spec.name}: up to {epochs} epochs (and max_minutes) in {time.perf_counter() - t0:.0f} s; "
          f"serving v{store.serving_version()}")
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


def hu_distances(synthetic: np.ndarray, real: np.ndarray, labels: np.ndarray) -> list[float]:
    """Per label (liver, tumour, background): |mean HU synthetic - mean HU real| and the 1D Wasserstein
    distance between the two HU histograms inside the same mask (HU clipped to -200..300, the model's
    window), i.e. the mean shift an intensity must move to turn one histogram into the other."""
    out = []
    for i in (1, 2, 0):
        inside = labels == i
        if not inside.any():
            out += [np.nan, np.nan]
            continue
        a, b = np.clip(synthetic[inside], *SEG_WINDOW), np.clip(real[inside], *SEG_WINDOW)
        out += [abs(a.mean() - b.mean()), wasserstein_distance(a, b)]
    return out


def synthesis_table(spec: SynthesisSpec, store: ModelStore, masks: list[Path], images: list[Path],
                    steps_list: list[int]) -> None:
    """Time and memory per sample against DDIM steps; quality as per-label HU statistics distances to
    the real image under the same held-out mask (``hu_distances``)."""
    synthesizer = Synthesizer(store)
    print(f"\n{spec.name} (v{store.serving_version()}) on {len(masks)} held-out masks\n")
    print("| DDIM steps | s / sample | peak MiB | mean |ΔHU| liver, tumour, background "
          "| HU histogram W1 liver, tumour, background |")
    print("|---|---|---|---|---|")
    for steps in steps_list:
        times, mems, dists = [], [], []
        for mask_path, image_path in zip(masks, images):
            mask = sitk.ReadImage(str(mask_path))
            with PeakRSS() as m:
                hu = synthesizer.generate_hu(mask, steps, seed=0, device=torch.device("cpu"))
            times.append(m.seconds), mems.append(m.mib)
            real, labels = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))), sitk.GetArrayFromImage(mask)
            dists.append(hu_distances(hu, real, labels))
        d = np.nanmean(np.array(dists, dtype=float), axis=0)
        print(f"| {steps} | {np.mean(times):.2f} | {np.mean(mems):.0f} | {d[0]:.0f}, {d[2]:.0f}, {d[4]:.0f} | "
              f"{d[1]:.0f}, {d[3]:.0f}, {d[5]:.0f} |")


# --- synthesis quality through a segmentation model -------------------------------------------------

SEG_WINDOW = (-200.0, 300.0)
SMALL_REAL = ("lits117_subvolume_x0y0z0", "lits117_subvolume_x1y0z0")  # the small real training set


def seg_pair(hu: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, J, I) HU and label ids at 1 mm -> (1, 1, ...) window image and whole-liver mask at 2 mm (2x2x2 pooled)."""
    lo, hi = SEG_WINDOW
    x = torch.from_numpy(np.clip((hu.astype(np.float32) - lo) / (hi - lo), 0, 1))[None, None]
    y = torch.from_numpy((labels > 0).astype(np.float32))[None, None]
    return F.avg_pool3d(x, 2), (F.avg_pool3d(y, 2) > 0.5).float()


def train_segmenter(pairs: list[tuple[torch.Tensor, torch.Tensor]], iterations: int, seed: int = 0) -> torch.nn.Module:
    """A small 3D UNet (whole liver vs background) trained on whole 2 mm volumes with random flips."""
    torch.manual_seed(seed)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2),
               num_res_units=1, norm="instance")
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    x, y = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(iterations):
        dims = [d for d in (2, 3, 4) if torch.rand(1, generator=generator) < 0.5]
        xb, yb = (x.flip(dims), y.flip(dims)) if dims else (x, y)
        optimizer.zero_grad()
        loss_fn(net(xb), yb).backward()
        optimizer.step()
    return net.eval()


@torch.no_grad()
def dice(net: torch.nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean whole-liver Dice over the pairs."""
    scores = []
    for x, y in pairs:
        pred = net(x).argmax(1, keepdim=True).float()
        scores.append(float(2 * (pred * y).sum() / (pred.sum() + y.sum()).clamp(min=1)))
    return float(np.mean(scores))


def synthetic_pairs_table(synthesizer: Synthesizer, studies: Path, truth: Path, held_out: list[Path],
                          steps: int, iterations: int, seeds: int) -> None:
    """Synthesis judged by segmentation, both ways.

    Quality: a segmenter trained on the six real training octants, its Dice on the real held-out images
    against its Dice on images synthesised from the same held-out masks (equal Dice: the synthetic
    liver looks like liver to it). Usefulness: held-out Dice of a segmenter trained on two real octants,
    on those two plus synthetic images of the other four training masks, and on all six real ones.
    Every segmenter is trained with ``seeds`` seeds (initialisation and flips): mean and spread.
    """
    def real(path: Path):
        return seg_pair(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), sitk.GetArrayFromImage(sitk.ReadImage(str(truth / path.name))))

    def synthetic(path: Path):
        mask = sitk.ReadImage(str(truth / path.name))
        return seg_pair(synthesizer.generate_hu(mask, steps, seed=0, device=torch.device("cpu")), sitk.GetArrayFromImage(mask))

    def dices(pairs, test) -> str:
        scores = [dice(train_segmenter(pairs, iterations, seed), test) for seed in range(seeds)]
        return f"{np.mean(scores):.3f} ± {np.std(scores):.3f} ({', '.join(f'{s:.3f}' for s in scores)})"

    train_paths = sorted(studies.glob("*.nii.gz"))
    small = [p for p in train_paths if p.name.split(".")[0] in SMALL_REAL]
    others = [p for p in train_paths if p not in small]
    real_test = [real(p) for p in held_out]
    synthetic_test = [synthetic(p) for p in held_out]
    all_real = train_segmenter([real(p) for p in train_paths], iterations)
    print(f"\nSynthesis judged by a whole-liver segmenter (3D UNet 8-16-32 on 2 mm volumes, {iterations} Adam steps; "
          f"{steps} DDIM steps; Dice on the {len(held_out)} held-out octants; mean ± sd over {seeds} seeds)\n")
    print("| segmenter trained on | tested on | Dice |")
    print("|---|---|---|")
    print(f"| 6 real octants (seed 0) | real held-out images | {dice(all_real, real_test):.3f} |")
    print(f"| 6 real octants (seed 0) | synthetic images of the held-out masks | {dice(all_real, synthetic_test):.3f} |")
    small_pairs = [real(p) for p in small]
    for name, pairs in ((f"{len(small)} real", small_pairs),
                        (f"{len(small)} real + {len(others)} synthetic", small_pairs + [synthetic(p) for p in others]),
                        (f"{len(small)} real + {len(others)} real", small_pairs + [real(p) for p in others])):
        print(f"| {name} | real held-out images | {dices(pairs, real_test)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="restoration epochs")
    parser.add_argument("--iterations", type=int, default=40, help="restoration batches (of 4 crops) per epoch")
    parser.add_argument("--synth-epochs", type=int, default=10, help="synthesis epochs")
    parser.add_argument("--synth-iterations", type=int, default=50, help="synthesis batches (of 16 slices) per epoch")
    parser.add_argument("--synth-models", type=Path, default=None,
                        help="keep the synthesis model here; if it already holds one, measure it without training")
    parser.add_argument("--synth-minutes", type=float, default=10, help="synthesis training wall-clock cap")
    parser.add_argument("--seeds", type=int, default=3, help="segmenter seeds per training set")
    parser.add_argument("--steps", default="5,10,25,50", help="DDIM steps to time")
    parser.add_argument("--skip-pairs", action="store_true", help="synthesis: no segmentation tables")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "medlabel-bench-generation")
    parser.add_argument("--part", choices=("all", "restoration", "synthesis", "cost"), default="all",
                        help="cost: restoration time and memory per volume only (version-0 networks cost the same)")
    parser.add_argument("--restoration-models", default="ct_denoise,ct_superres", help="restoration: which to train")
    parser.add_argument("--seg-iterations", type=int, default=200, help="Adam steps of each segmenter")
    parser.add_argument("--pair-steps", type=int, default=0, help="DDIM steps of the synthetic pairs (0: the model's default)")
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
    synthesis_train = SMALL_TRAIN.model_copy(update={"max_epochs": args.synth_epochs,
                                                     "iterations_per_epoch": args.synth_iterations,
                                                     "max_minutes": args.synth_minutes})
    print(f"torch threads {torch.get_num_threads()}; {len(list(studies.glob('*.nii.gz')))} training octants")

    specs = [
        (RestorationSpec(name="ct_denoise", degradation=Denoise(), train=restoration_train), [20.0, 40.0, 60.0]),
        (RestorationSpec(name="ct_superres", degradation=SuperResolution(), train=restoration_train), [2, 4]),
    ]
    if args.part == "cost":
        full = args.out / "demo" / "reference" / "lits117_image.nii.gz"  # the whole 128^3 volume the octants come from
        for spec, levels in specs:
            store = ModelStore(args.out / "models", spec)
            Restorer(store)
            for paths in (held_out, [full]):
                restoration_table(spec, store, paths, [40.0] if isinstance(spec.degradation, Denoise) else levels)
        return
    chosen = args.restoration_models.split(",")
    for spec, levels in [s for s in specs if s[0].name in chosen] if args.part != "synthesis" else []:
        store = train(spec, studies, args.out / "models", args.epochs, RestorationTrain)
        restoration_table(spec, store, held_out, levels)

    if args.part != "restoration":
        for image in studies.glob("*.nii.gz"):  # masks as final labels, as annotators would submit them
            (studies / "labels" / "final").mkdir(parents=True, exist_ok=True)
            shutil.copy(truth / image.name, studies / "labels" / "final" / image.name)
        spec = SynthesisSpec(name="liver_synth", labels={"liver": 1, "tumour": 2},
                             network=DiffusionNetwork(channels=(16, 32, 64)), train=synthesis_train)
        models = args.synth_models or args.out / "models"
        if (models / spec.name).exists() and args.synth_models:
            store = ModelStore(models, spec)
            print(f"reused {spec.name} v{store.serving_version()} from {models}")
        else:
            store = train(spec, studies, models, args.synth_epochs, SynthesisTrain)
        synthesis_table(spec, store, [truth / p.name for p in held_out], held_out,
                        [int(s) for s in args.steps.split(",")])
        if not args.skip_pairs:
            synthetic_pairs_table(Synthesizer(store), studies, truth, held_out, args.pair_steps or spec.default_steps,
                                  args.seg_iterations, args.seeds)


if __name__ == "__main__":
    main()
