"""The training half of the shared task contract: fine-tune, validate on a fixed split, gate, version.

Every kind's trainer subclasses ``ContinualTrainTask`` and supplies only what is specific to it (network,
loss, transforms, metrics and ``evaluate_weights``). Everything the continual-learning loop relies on
lives here once: fine-tuning from the serving weights, a seeded run, a fixed number of batches per epoch,
a validation split that depends only on image ids, and, when training ends, the best checkpoint kept as
a new version and promoted only if it scores at least the serving model's score on the same images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.handlers import LrScheduleHandler
from monai.utils import set_determinism
from monailabel.tasks.train.basic_train import BasicTrainTask, Context
from monailabel.tasks.train.handler import prepare_stats
from torch.utils.data import RandomSampler

from medlabel.atomic import atomic_write_json
from medlabel.continual.store import ModelStore, gate
from medlabel.spec import AppSettings

logger = logging.getLogger(__name__)


def split_by_id(datalist: list[dict], val_fraction: float) -> tuple[list[dict], list[dict]]:
    """Deterministic train/validation split: the images whose id hashes lowest are validation.

    Depends only on the ids present, never on order or a random seed, so a model and its successor are
    compared on the same images. At least one validation image once there are two or more.
    """
    if len(datalist) < 2 or val_fraction <= 0:
        return list(datalist), []
    ranked = sorted(datalist, key=lambda d: hashlib.sha1(Path(d["image"]).name.encode()).hexdigest())
    n_val = min(len(ranked) - 1, max(1, math.floor(len(ranked) * val_fraction + 0.5)))
    val = ranked[:n_val]
    return [d for d in datalist if d not in val], val


class ContinualTrainTask(BasicTrainTask):
    """monailabel's ignite training (DDP on several GPUs, AMP on CUDA) wired into the model store.

    Subclasses implement ``network``, ``loss_function``, the transforms, ``val_inferer`` and
    ``evaluate_weights``; they may pass extra monailabel ``config`` keys.
    """

    needs_labels = True  # False: learns from the images alone, so the server lets it train before any label

    def __init__(self, store: ModelStore, settings: AppSettings, description: str, **config: Any):
        self.store = store
        self.spec = store.spec
        t = self.spec.train
        super().__init__(
            model_dir=str(store.train_dir),
            description=description,
            config={
                "max_epochs": settings.max_epochs or t.max_epochs,
                "learning_rate": t.learning_rate,
                "iterations_per_epoch": t.iterations_per_epoch,
                "train_batch_size": t.batch_size,
                "val_batch_size": 1,
                "val_split": t.val_fraction,
                "dataset": "CacheDataset",
                "dataloader": "DataLoader",
                "tracking": "None",
                "device": "cuda" if torch.cuda.is_available() else "cpu",
                **config,
            },
            amp=torch.cuda.is_available(),
            labels=self.spec.labels,
            n_saved=1,
            train_save_interval=10**9,
            tracking=None,
        )

    # -- what a kind supplies --------------------------------------------------------------------------

    def evaluate_weights(self, weights: dict[str, torch.Tensor], datalist: list[dict], device) -> dict[str, Any]:
        """Score ``weights`` on ``datalist``; ``{"score": float, ...details}``, higher is better."""
        raise NotImplementedError

    # -- shared behaviour ------------------------------------------------------------------------------

    def optimizer(self, context: Context):
        lr = float(context.request.get("learning_rate", self.spec.train.learning_rate))
        return torch.optim.AdamW(context.network.parameters(), lr=lr, weight_decay=1e-5)

    def lr_scheduler_handler(self, context: Context):
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(context.optimizer, T_max=max(1, context.max_epochs))
        return LrScheduleHandler(cosine, print_lr=False)

    def load_path(self, output_dir, pretrained=True):
        """Always start from the serving weights (fine-tuning), never from a stale run folder."""
        path = self.store.serving_path
        return str(path) if pretrained and path.exists() else None

    def train(self, rank, world_size, request, datalist):
        """monailabel's training run, seeded (``seed`` in the request, default 0) so runs are repeatable."""
        set_determinism(seed=int(request.get("seed", 0)) + rank)
        try:
            return super().train(rank, world_size, request, datalist)
        finally:
            set_determinism(seed=None)

    def train_data_loader(self, context: Context, num_workers=0, shuffle=True):
        """A fixed number of batches per epoch, drawn with replacement.

        With four labelled images an epoch over the images is two optimizer steps; sized in batches, an
        epoch means the same amount of learning whether 4 or 400 images are labelled (as nnU-Net does).
        """
        dataset, _ = self._dataset(context, context.train_datalist, is_train=True)
        batches = int(context.request.get("iterations_per_epoch", self.spec.train.iterations_per_epoch))
        sampler = RandomSampler(dataset, replacement=True, num_samples=batches * context.train_batch_size)
        return DataLoader(dataset, batch_size=context.train_batch_size, sampler=sampler, num_workers=num_workers)

    def partition_datalist(self, context: Context, shuffle=False):
        train, val = split_by_id(context.datalist, float(context.request.get("val_split", 0.0)))
        logger.info(f"training on {len(train)} labelled images, validating on {len(val)}")
        return train, val

    def finalize(self, context: Context):
        """When training ends, keep the best checkpoint as a new version and promote it only if it passes the gate.

        Also keeps the validation curve (one value per epoch) and enforces the wall-clock cap.
        """
        self._stop_at_time_cap(context)
        if context.local_rank != 0:
            return
        curve: list[float] = []
        if context.evaluator is not None:
            key = next(iter(self.val_key_metric(context)))
            context.evaluator.add_event_handler(
                Events.EPOCH_COMPLETED, lambda engine: curve.append(round(float(engine.state.metrics[key]), 4))
            )

        def decide(engine):
            best = Path(context.output_dir) / self._key_metric_filename
            if not best.exists():
                logger.warning("training produced no checkpoint; serving model unchanged")
                return
            saved = torch.load(best, map_location="cpu", weights_only=True)
            weights = saved["model"] if isinstance(saved.get("model"), dict) else saved  # ignite unwraps one object
            stats = prepare_stats(context.start_ts, context.trainer, context.evaluator)
            metrics = {"train": stats.get("train", {}).get("metrics"), "best_val": stats.get("best_metric")}
            version = self.store.add_candidate(weights, len(context.datalist), metrics)
            val = context.val_datalist
            candidate = self.evaluate_weights(weights, val, context.device)
            serving = self.evaluate_weights(self.store.load_serving()["model"], val, context.device)
            result = gate(float(candidate["score"]), float(serving["score"]), len(val))
            self.store.decide(version, result)
            summary = {**stats, "version": version, "labelled_images": len(context.datalist), "gate": asdict(result),
                       "candidate": candidate, "serving": serving, "val_curve": curve}
            atomic_write_json(Path(self._stats_path), json.loads(json.dumps(summary, default=str)))
            logger.info(f"'{self.spec.name}' version {version}: {result.reason}")

        context.trainer.add_event_handler(Events.COMPLETED, decide)

    def _stop_at_time_cap(self, context: Context) -> None:
        """Ends training after the epoch whose successor would pass ``max_minutes`` (spec, or the request).

        Checked after validation, so the best checkpoint already covers the last epoch; the gate then
        runs as after a full schedule. A user with a CPU budget gets a model within it, whatever the load.
        """
        cap = context.request.get("max_minutes", self.spec.train.max_minutes)
        if not cap:
            return
        limit = float(cap) * 60

        def check(engine):
            elapsed = time.time() - context.start_ts
            if elapsed + elapsed / engine.state.epoch > limit:
                logger.info(f"stopping after epoch {engine.state.epoch}: another would pass {float(cap):g} min")
                engine.terminate()

        context.trainer.add_event_handler(Events.EPOCH_COMPLETED, check)

    def __call__(self, request, datastore):
        run_dir = Path(self._model_dir) / str(request.get("name", self._config["name"]))
        (run_dir / self._key_metric_filename).unlink(missing_ok=True)  # never gate a previous run's best
        try:
            return super().__call__(request, datastore)
        finally:
            self.store.mark_pending(False)  # finished (a killed run stays pending and is queued again at start)
