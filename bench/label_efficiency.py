"""Label efficiency: held-out Dice against the number of labelled cases, random vs uncertainty sampling.

    .venv/bin/python bench/label_efficiency.py [--seeds 0 1 2] [--max-labels 4] [--epochs 8] [--out DIR]

On the real demo CT (LiTS case 117 split into 8 octant sub-volumes), two octants are held out for
evaluation and never enter the studies folder; the other six are the unlabeled pool. For each strategy
and seed, a fresh real server (``apps/radiology``, model ``liver_ct``, server-side retraining off) is
driven exactly as a client would: ``POST /activelearning/<strategy>`` for the next case, ``PUT
/datastore/label`` with its ground truth (the simulated annotator), and from two labels on ``POST
/train/liver_ct`` (seeded) and wait. After each round the *serving* model (what the gate promoted) is
scored on the held-out octants with the same code the gate uses (``kinds.segmentation.metrics``).

Prints a markdown table (mean and spread over seeds) and writes ``label_efficiency.png`` and
``label_efficiency.json`` to ``--out``. Runs accumulate in that JSON (keyed by strategy and seed, for the
same ``--epochs`` and ``--max-labels``), so the sessions can be run one at a time on a shared machine,
e.g. ``--strategies random --seeds 0``, and the table and plot always cover every session recorded.
Each training is ``--epochs`` epochs of 20 batches; an epoch takes 16 s (2-core CPU with AVX-512) to
40 s (without), so the default run (2 strategies x 3 seeds x 3 trainings x 8 epochs) takes one to two
hours; the README's table used ``--epochs 4``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infer_latency import REPO, Server, log  # noqa: E402  (bench scripts share one server harness)

from medlabel.atomic import atomic_write_json  # noqa: E402
from medlabel.continual.store import ModelStore  # noqa: E402
from medlabel.demo.build import build  # noqa: E402
from medlabel.kinds.segmentation.metrics import evaluate  # noqa: E402
from medlabel.spec import ModelSpec  # noqa: E402

MODEL = "liver_ct"
HELD_OUT = ["lits117_subvolume_x1y1z0", "lits117_subvolume_x1y0z1"]
LABEL_INFO = {"label_info": [{"name": "liver", "idx": 1}, {"name": "tumour", "idx": 2}]}


def held_out_dice(model_dir: Path, images: Path, truth: Path) -> dict:
    """Whole-volume Dice per label of the serving weights on the held-out octants (the gate's metric)."""
    spec = ModelSpec.model_validate_json((model_dir / MODEL / "spec.json").read_text())
    store = ModelStore(model_dir, spec)
    weights = store.load_serving()["model"]
    data = [{"image": str(images / f"{i}.nii.gz"), "label": str(truth / f"{i}.nii.gz")} for i in HELD_OUT]
    result = evaluate(spec, weights, data, torch.device("cpu"))
    return {"liver": result["dice"]["liver"], "mean": result["mean_dice"], "serving": store.serving_version()}


def wait_training(url: str, timeout: float) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = requests.get(f"{url}/train/", timeout=10).json()
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
        time.sleep(2)
    raise TimeoutError("training did not finish")


def run_one(strategy: str, seed: int, args, demo: Path, work: Path) -> list[dict]:
    """One labelling session: returns the held-out Dice after 0..max_labels labelled cases."""
    studies = work / f"{strategy}-{seed}" / "studies"
    model_dir = work / f"{strategy}-{seed}" / "models"
    source, truth = demo / "studies" / "liver-ct", demo / "groundtruth" / "liver-ct"
    studies.mkdir(parents=True)
    for image in sorted(source.glob("*.nii.gz")):
        if image.name.removesuffix(".nii.gz") not in HELD_OUT:
            shutil.copy(image, studies / image.name)
    conf = {"models": MODEL, "model_dir": str(model_dir), "retrain_after": "0", "max_epochs": str(args.epochs)}
    curve = []
    with Server(f"{strategy}-{seed}", REPO / "apps" / "radiology", studies, conf, work / f"{strategy}-{seed}.log") as server:
        curve.append({"labelled": 0, "picked": None, **held_out_dice(model_dir, source, truth)})
        for n in range(1, args.max_labels + 1):
            r = requests.post(f"{server.url}/activelearning/{strategy}", json={}, timeout=3600)
            r.raise_for_status()
            picked = r.json()["id"]
            with open(truth / f"{picked}.nii.gz", "rb") as f:
                requests.put(f"{server.url}/datastore/label", params={"image": picked, "tag": "final"},
                             files={"label": (f"{picked}.nii.gz", f)},
                             data={"params": json.dumps(LABEL_INFO)}, timeout=600).raise_for_status()
            if n >= 2:  # the gate needs a validation image
                t0 = time.perf_counter()
                requests.post(f"{server.url}/train/{MODEL}", json={"seed": seed}, timeout=60).raise_for_status()
                status = wait_training(server.url, timeout=args.train_timeout)
                log(f"{strategy} seed {seed}: {n} labels, training {status.get('status')} in {time.perf_counter() - t0:.0f} s")
            point = {"labelled": n, "picked": picked, **held_out_dice(model_dir, source, truth)}
            log(f"{strategy} seed {seed}: {point}")
            curve.append(point)
    return curve


def table(results: dict[str, dict[int, list[dict]]], max_labels: int) -> str:
    lines = ["| labelled cases | " + " | ".join(f"{s} liver Dice (mean ± sd)" for s in results) + " |",
             "|---|" + "---|" * len(results)]
    for n in range(max_labels + 1):
        cells = []
        for runs in results.values():
            values = [run[n]["liver"] for run in runs.values()]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {sd:.3f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, dict[int, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for strategy, runs in results.items():
        xs = [p["labelled"] for p in next(iter(runs.values()))]
        per_n = [[run[i]["liver"] for run in runs.values()] for i in range(len(xs))]
        means = [statistics.mean(v) for v in per_n]
        ax.plot(xs, means, marker="o", label=strategy)
        ax.fill_between(xs, [min(v) for v in per_n], [max(v) for v in per_n], alpha=0.2)
    ax.set_xlabel("labelled cases")
    ax.set_ylabel("held-out liver Dice")
    ax.set_title("Label efficiency on the demo CT (band: min-max over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategies", nargs="+", default=["random", "uncertainty"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-labels", type=int, default=4)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--train-timeout", type=float, default=3600)
    p.add_argument("--out", type=Path, default=REPO / "artifacts" / "label-efficiency")
    p.add_argument("--fresh", action="store_true", help="forget the sessions already recorded in --out")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "label_efficiency.json"
    settings = {"epochs": args.epochs, "max_labels": args.max_labels}
    results: dict[str, dict[str, list[dict]]] = {}
    if record.exists() and not args.fresh:
        saved = json.loads(record.read_text())
        if saved.get("settings") == settings:
            results = saved["results"]
        else:
            log(f"{record} holds other settings {saved.get('settings')}: starting afresh")
    todo = [(s, seed) for s in args.strategies for seed in args.seeds if str(seed) not in results.get(s, {})]
    if todo:
        with tempfile.TemporaryDirectory(prefix="medlabel-label-efficiency-") as tmp:
            work = Path(tmp)
            demo = work / "demo"
            build(demo)
            for strategy, seed in todo:
                results.setdefault(strategy, {})[str(seed)] = run_one(strategy, seed, args, demo, work)
                atomic_write_json(record, {"settings": settings, "results": results})
    plot(results, args.out / "label_efficiency.png")
    print(table(results, args.max_labels))
    print(f"\nsessions per strategy: { {s: sorted(runs, key=int) for s, runs in results.items()} }")
    print(f"plot: {args.out / 'label_efficiency.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
