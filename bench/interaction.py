"""Interactive refinement: Dice per interaction with a simulated annotator, and latency over HTTP.

    .venv/bin/python bench/interaction.py [--train-minutes 1.5] [--click-epochs 8] [--clicks 10] [--strokes 5]
                                          [--out docs] [--latency-repeats 3] [--skip-latency] [--latency-only]

1. For the demo CT (liver) and the MNI brain MR (brain), two octants are held out; a real server
   (``apps/radiology``) gets the ground truth of the other six as final labels (``PUT /datastore/label``)
   and trains the segmentation model for ``--train-minutes`` of wall clock (the continual trainer's
   ``max_minutes`` cap, short epochs) and the click model for ``--click-epochs`` epochs of 4 batches
   (``POST /train/<model>``), as a user would.
2. On the held-out octants, with the trained weights and the same code the server runs, a simulated
   annotator (``medlabel.interactive.simulate``: interact at the interior of the largest error region)
   - clicks 0..``--clicks`` times on the click model, starting from nothing (0 clicks: Dice 0);
   - paints 0..``--strokes`` scribble strokes on the segmentation model's prediction (0 strokes: the
     model alone), each stroke sent with the result of the previous one, as Slicer does.
3. Latency, warm, end to end over HTTP (``POST /infer``, Slicer's client request) on a 512x512x200 CT
   resampled from the real CT (0.7x0.7x2.0 mm): scribble refinements with Slicer's ROI of 128^3 voxels
   around the strokes (a new stroke in the same ROI, and a new ROI, each call, before and after the
   segmentation model ran on the image, as in Slicer), and a click (the click model's box is 128 mm:
   181x181x64 voxels).

Prints markdown tables and writes ``interaction.png`` and ``interaction.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import requests
import torch
from monai.data import MetaTensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infer_latency import REPO, Server, log, write_ct_sized  # noqa: E402  (bench scripts share one harness)
from label_efficiency import wait_training  # noqa: E402

sys.path.insert(0, str(REPO / "apps" / "radiology"))
import main as radiology  # noqa: E402

from medlabel.continual.store import ModelStore  # noqa: E402
from medlabel.demo.build import build  # noqa: E402
from medlabel.interactive.preprocess import in_memory_transforms  # noqa: E402
from medlabel.interactive.simulate import next_click, next_stroke  # noqa: E402
from medlabel.interactive.volume import read_volume  # noqa: E402
from medlabel.io.writer import write_label  # noqa: E402
from medlabel.kinds.clicks.predictor import ClickPredictor  # noqa: E402
from medlabel.kinds.scribbles.infer import ScribblesRefiner  # noqa: E402
from medlabel.kinds.scribbles.prior import answer_in_box  # noqa: E402
from medlabel.kinds.segmentation.answers import WholeImageAnswer  # noqa: E402
from medlabel.kinds.scribbles.refinement import refine  # noqa: E402
from medlabel.kinds.scribbles.request import Scribbles  # noqa: E402

SPECS = {s.name: s for s in radiology.RadiologyApp.SPECS}
DATASETS = {
    "liver-ct": {"segmentation": "liver_ct", "clicks": "liver_clicks", "scribbles": "liver_ct_scribbles",
                 "structure": "liver", "held_out": ["lits117_subvolume_x1y1z0", "lits117_subvolume_x1y0z1"]},
    "brain-mr": {"segmentation": "brain_mr", "clicks": "brain_clicks", "scribbles": "brain_mr_scribbles",
                 "structure": "brain", "held_out": ["mni152_subvolume_x1y1z0", "mni152_subvolume_x0y1z1"]},
}
CPU = torch.device("cpu")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def train(dataset: str, cfg: dict, demo: Path, work: Path, minutes: float, click_epochs: int) -> Path:
    """A server on the non-held-out octants; labels in, both models trained; returns the model folder.

    Models trained in an earlier run with the same ``--work`` are reused (to measure changes of the
    interaction code on the same weights)."""
    studies, model_dir = work / dataset / "studies", work / dataset / "models"
    if all(ModelStore(model_dir, SPECS[cfg[m]]).serving_version() > 0 for m in ("segmentation", "clicks")):
        log(f"{dataset}: reusing the models trained in {model_dir}")
        return model_dir
    studies.mkdir(parents=True)
    for image in sorted((demo / "studies" / dataset).glob("*.nii.gz")):
        if image.name.removesuffix(".nii.gz") not in cfg["held_out"]:
            shutil.copy(image, studies / image.name)
    conf = {"models": f"{cfg['segmentation']},{cfg['clicks']}", "model_dir": str(model_dir), "retrain_after": "0"}
    with Server(dataset, REPO / "apps" / "radiology", studies, conf, work / f"{dataset}.log", start_timeout=600) as server:
        info = {"label_info": [{"name": n, "idx": i} for n, i in SPECS[cfg["segmentation"]].labels.items()]}
        for image in sorted(studies.glob("*.nii.gz")):
            with open(demo / "groundtruth" / dataset / image.name, "rb") as f:
                r = requests.put(f"{server.url}/datastore/label", params={"image": image.name.removesuffix(".nii.gz"), "tag": "final"},
                                 data={"params": json.dumps(info)}, files={"label": (image.name, f)}, timeout=600)
            r.raise_for_status()
        requests_by_model = {  # the click model as in its system test: fixed epochs, the cap only a guard
            cfg["segmentation"]: {"max_epochs": 200, "iterations_per_epoch": 5, "max_minutes": minutes},
            cfg["clicks"]: {"max_epochs": click_epochs, "iterations_per_epoch": 4, "max_minutes": 4 * minutes},
        }
        for model, request in requests_by_model.items():
            t0 = time.time()
            requests.post(f"{server.url}/train/{model}", json=request, timeout=600).raise_for_status()
            status = wait_training(server.url, 7200)
            stats_file = model_dir / model / "train" / "train_stats.json"
            stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
            log(f"{dataset}: trained {model} in {time.time() - t0:.0f} s ({stats.get('epoch', '?')} epochs): "
                f"{status.get('status')}, {stats.get('gate', {}).get('reason')}")
    return model_dir


def click_curve(dataset: str, cfg: dict, demo: Path, model_dir: Path, clicks: int, **spec_changes) -> list[list[float]]:
    """Dice after 0..``clicks`` clicks per held-out image; ``spec_changes`` alter the click spec (e.g. radius 0)."""
    predictor = ClickPredictor(ModelStore(model_dir, SPECS[cfg["clicks"]].model_copy(update=spec_changes)))
    curves = []
    for image_id in cfg["held_out"]:
        volume = read_volume(str(demo / "studies" / dataset / f"{image_id}.nii.gz"), "image")
        truth = np.asarray(nib.load(demo / "groundtruth" / dataset / f"{image_id}.nii.gz").dataobj) == SPECS[cfg["clicks"]].label_id
        fg, bg, pred, curve = [], [], np.zeros(truth.shape, bool), [0.0]
        for _ in range(clicks):
            c = next_click(pred, truth)
            if c is not None:
                (fg if c.foreground else bg).append(list(c.point))
                pred = predictor.predict(volume, fg, bg, CPU)[0] == 1
            curve.append(dice(pred, truth))
        curves.append(curve)
    return curves


def whole_image_answer(predictor, volume) -> WholeImageAnswer:
    """The segmentation model's answer on the whole image, as its infer task leaves it for the scribbles."""
    image = MetaTensor(torch.from_numpy(np.ascontiguousarray(volume.array, dtype=np.float32))[None],
                       affine=torch.as_tensor(volume.affine))
    image = in_memory_transforms(predictor.spec)({"image": image})["image"]
    return WholeImageAnswer(predictor.probabilities(image, CPU).half(), image.affine.numpy())


def scribble_curve(dataset: str, cfg: dict, demo: Path, model_dir: Path, strokes: int) -> list[list[float]]:
    spec = SPECS[cfg["scribbles"]]
    refiner = ScribblesRefiner(ModelStore(model_dir, spec))
    label_id = spec.prior.labels[cfg["structure"]]
    curves = []
    for image_id in cfg["held_out"]:
        volume = read_volume(str(demo / "studies" / dataset / f"{image_id}.nii.gz"), "image")
        truth = np.asarray(nib.load(demo / "groundtruth" / dataset / f"{image_id}.nii.gz").dataobj) == label_id
        answer = whole_image_answer(refiner.prior, volume)  # the user ran the model, then scribbles on it
        whole = tuple(slice(0, n) for n in volume.shape)
        pred = answer_in_box(answer, volume, whole).argmax(0) == label_id
        fg, bg, curve = np.zeros(truth.shape, bool), np.zeros(truth.shape, bool), [dice(pred, truth)]
        for _ in range(strokes):
            found = next_stroke(pred, truth)
            if found is not None:
                mask, foreground = found
                (fg if foreground else bg)[mask] = True
                request = Scribbles(fg.copy(), bg.copy(), cfg["structure"], pred.copy(), None)
                prob = lambda box: answer_in_box(answer, volume, box, label_id)  # noqa: E731  (as the server reads it)
                pred = refine(volume, request, spec, prob, prior_trained=refiner.prior.version > 0).label == 1
            curve.append(dice(pred, truth))
        curves.append(curve)
    return curves


def server_latencies(response: requests.Response) -> dict:
    """The stage times the infer task reports in the multipart answer's ``params`` part (Slicer's format)."""
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    for part in MultipartDecoder.from_response(response).parts:
        if b'name="params"' in part.headers.get(b"Content-Disposition", b""):
            return json.loads(part.content).get("latencies", {})
    return {}


def latency(demo: Path, work: Path, model_dir: Path, repeats: int, cpu_precision: str = "auto") -> dict:
    """Warm end-to-end ``POST /infer`` seconds on a 512x512x200 CT: scribble refinements in a 128^3 ROI and clicks.

    Scribbles are timed as a new stroke in the same ROI each call (Slicer's flow: the ROI is placed once; the
    prior model's answer in it is cached) and a new ROI each call: first with the prior network running in
    the ROI, then after ``liver_ct`` segmented the whole image (its answer is cropped, as in Slicer's flow of
    running the model before scribbling).
    """
    big = work / "latency" / "studies" / "ct512.nii.gz"
    big.parent.mkdir(parents=True, exist_ok=True)
    if not big.exists():
        write_ct_sized(demo / "reference" / "lits117_image.nii.gz", big)
    image = nib.load(big)
    truth_small = np.asarray(nib.load(demo / "reference" / "lits117_labels.nii.gz").dataobj) == 1
    centre = np.argwhere(truth_small).mean(0) * np.asarray(image.shape) / np.asarray(truth_small.shape)
    c = np.rint(centre).astype(int)
    strokes = []
    for i in range(repeats + 1):  # every call a new stroke pair, on the next slice
        label = np.zeros(image.shape, np.uint8)
        label[c[0] - 20:c[0] + 20, c[1] - 3:c[1] + 3, c[2] + i] = 4  # a foreground stroke in the liver
        label[c[0] - 60:c[0] - 50, c[1] - 40:c[1] + 40, c[2] + i] = 3  # a background stroke beside it
        strokes.append(write_label(label, image.affine, ".nrrd"))
    label_info = [{"name": "liver", "id": 1}, {"name": "tumour", "id": 2},
                  {"name": "background_scribbles", "id": 3}, {"name": "foreground_scribbles", "id": 4}]

    def roi(shift: int) -> list[int]:
        return [int(v) for a in range(3) for v in (max(0, c[a] + (shift if a == 2 else 0) - 64),
                                                   min(image.shape[a], c[a] + (shift if a == 2 else 0) + 64))]

    conf = {"models": "liver_ct,liver_ct_scribbles,liver_clicks", "model_dir": str(model_dir), "retrain_after": "0",
            "cpu_precision": cpu_precision}
    out = {}
    with Server("latency", REPO / "apps" / "radiology", big.parent, conf, work / "latency.log", start_timeout=600) as server:
        def scribbles(i: int, shift: int) -> requests.Response:
            params = {"label_info": label_info, "roi": roi(shift), "selected_label_name": "liver",
                      "result_extension": ".nrrd", "result_dtype": "uint8"}
            with open(strokes[i], "rb") as f:
                return requests.post(f"{server.url}/infer/liver_ct_scribbles", params={"image": "ct512"},
                                     data={"params": json.dumps(params)}, files={"label": ("scribbles.nrrd", f)}, timeout=600)

        def click(i: int) -> requests.Response:
            params = {"foreground": [(c + [0, 0, i]).tolist()], "background": [], "label": "liver",
                      "result_extension": ".nrrd", "result_dtype": "uint8"}
            return requests.post(f"{server.url}/infer/liver_clicks", params={"image": "ct512"},
                                 data={"params": json.dumps(params)}, timeout=600)

        def segment(i: int) -> requests.Response:
            return requests.post(f"{server.url}/infer/liver_ct", params={"image": "ct512"},
                                 data={"params": json.dumps({"result_extension": ".nrrd", "result_dtype": "uint8"})},
                                 timeout=600)

        calls = {  # in this order: until liver_ct runs on the image, a new ROI runs the prior network in it
            "scribbles, new stroke in the same 128^3 ROI": lambda i: scribbles(i, 0),
            "scribbles, new 128^3 ROI each call": lambda i: scribbles(i, 6 * i),
            "liver_ct on the whole image": segment,
            "scribbles, new 128^3 ROI each call, after liver_ct ran on the image": lambda i: scribbles(i, 6 * i + 3),
            "click (box 181x181x64)": click,
        }
        for name, call in calls.items():
            seconds, stages = [], None
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                r = call(i)
                r.raise_for_status()
                if i:  # the first call loads the image (and, once, imports ITK): not warm
                    seconds.append(time.perf_counter() - t0)
                stages = server_latencies(r)
            out[name] = {"warm_s": seconds, "warm_median_s": float(np.median(seconds)), "server_stages": stages}
            log(f"latency {name}: warm {['%.2f' % s for s in seconds]}; last call's stages on the server {stages}")
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not results["datasets"]:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for dataset, r in results["datasets"].items():
        for ax, key, xlabel in ((axes[0], "clicks", "clicks"), (axes[1], "scribbles", "scribble strokes")):
            mean = np.mean(r[key], axis=0)
            line = ax.plot(range(len(mean)), mean, marker="o", label=dataset)[0]
            if key == "clicks" and "clicks_network_alone" in r:
                alone = np.mean(r["clicks_network_alone"], axis=0)
                ax.plot(range(len(alone)), alone, ls="--", color=line.get_color(), label=f"{dataset}, network alone")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("held-out Dice (mean of 2 octants)")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("Click model (0 clicks: nothing segmented)")
    axes[1].set_title("Scribbles on the model's prediction")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(results: dict) -> str:
    lines = []
    keys = (("clicks", "clicks"), ("clicks_network_alone", "clicks, network alone"), ("scribbles", "strokes"))
    for key, n in keys if results["datasets"] else ():
        width = max((len(r[key][0]) for r in results["datasets"].values() if key in r), default=0)
        lines.append(f"| {n} | " + " | ".join(str(i) for i in range(width)) + " |")
        lines.append("|---|" + "---|" * width)
        for dataset, r in results["datasets"].items():
            if key not in r:
                continue
            lines.append(f"| {dataset} | " + " | ".join(f"{v:.3f}" for v in np.mean(r[key], axis=0)) + " |")
        lines.append("")
    return "\n".join(lines)


def report(results: dict, out: Path) -> None:
    (out / "interaction.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "interaction.png")
    log("\n" + table(results))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-minutes", type=float, default=1.5, help="wall-clock training budget of the segmentation model")
    p.add_argument("--click-epochs", type=int, default=8, help="click model epochs of 4 batches")
    p.add_argument("--clicks", type=int, default=10)
    p.add_argument("--strokes", type=int, default=5)
    p.add_argument("--latency-repeats", type=int, default=3)
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--latency-only", action="store_true",
                   help="only the latency check, on untrained weights (the same networks, so the same cost)")
    p.add_argument("--cpu-precision", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="the server's CPU inference precision (float32: as on a CPU without native bfloat16)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--out", type=Path, default=REPO / "docs")
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="interaction-"))
    demo = work / "demo"
    if not (demo / "groundtruth").is_dir():
        build(demo, force=True)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "datasets": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.latency_only:
        results["latency"] = latency(demo, work, work / "untrained-models", args.latency_repeats, args.cpu_precision)
        report(results, args.out)
        args.datasets = []
    for dataset in args.datasets:  # the liver first: the latency check uses its trained models
        cfg = DATASETS[dataset]
        model_dir = train(dataset, cfg, demo, work, args.train_minutes, args.click_epochs)
        results["datasets"][dataset] = {
            "clicks": click_curve(dataset, cfg, demo, model_dir, args.clicks),
            "clicks_network_alone": click_curve(dataset, cfg, demo, model_dir, args.clicks, click_radius_mm=0.0),
            "scribbles": scribble_curve(dataset, cfg, demo, model_dir, args.strokes),
        }
        log(f"{dataset}: {json.dumps(results['datasets'][dataset])}")
        report(results, args.out)  # after every stage, so a run stopped by a time limit still reports
        if dataset == "liver-ct" and not args.skip_latency:
            results["latency"] = latency(demo, work, model_dir, args.latency_repeats, args.cpu_precision)
            report(results, args.out)
    print(table(results))
    for name, r in results.get("latency", {}).items():
        print(f"latency {name}: warm median {r['warm_median_s']:.2f} s ({['%.2f' % s for s in r['warm_s']]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
