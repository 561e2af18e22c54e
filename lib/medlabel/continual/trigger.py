"""Server-side retraining: queue training once enough new final labels have arrived.

Counts final label versions in the label history (a resubmitted label is new information too). When
``retrain_after`` new ones have arrived since training was last queued, every model is queued through
monailabel's single-worker training queue, so trainings never overlap; if one is already waiting in
the queue, no second is added: the waiting one will read the newest labels when it starts.
A model stays marked pending until its training finishes, so a server killed mid-training queues it
again when it starts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

from filelock import FileLock

from medlabel.atomic import atomic_write_json
from medlabel.continual.store import ModelStore

logger = logging.getLogger(__name__)


class RetrainTrigger:
    """Decides when to queue training; ``queue(models)`` does the queuing (the app's async training)."""

    def __init__(
        self,
        state_file: Path,
        retrain_after: int,
        stores: dict[str, ModelStore],
        count_final_labels: Callable[[], int],
        queue: Callable[[list[str]], None],
        waiting: Callable[[], bool],
    ):
        self.state_file = Path(state_file)
        self.retrain_after = retrain_after
        self.stores = stores
        self.count_final_labels = count_final_labels
        self.queue = queue
        self.waiting = waiting
        self._lock = FileLock(str(self.state_file) + ".lock")

    def _labels_at_last_queue(self) -> int:
        if not self.state_file.exists():
            return 0
        return int(json.loads(self.state_file.read_text()).get("labels_at_last_queue", 0))

    def status(self) -> dict:
        """For /info: the threshold and how many new final labels count towards it."""
        return {
            "retrain_after": self.retrain_after,
            "new_final_labels": self.count_final_labels() - self._labels_at_last_queue(),
            "pending": sorted(name for name, s in self.stores.items() if s.pending),
        }

    def on_label_saved(self) -> dict:
        """Called after every saved label; queues training when the threshold is reached."""
        if self.retrain_after <= 0:
            return {"retrain": "disabled"}
        with self._lock:
            total = self.count_final_labels()
            new = total - self._labels_at_last_queue()
            if new < self.retrain_after:
                return {"retrain": f"{new}/{self.retrain_after} new labels"}
            atomic_write_json(self.state_file, {"labels_at_last_queue": total})
        if self.waiting():
            logger.info("retrain threshold reached; a queued training will include the new labels")
            return {"retrain": "already queued"}
        self._queue(list(self.stores))
        return {"retrain": "queued"}

    def resume(self) -> list[str]:
        """At start: queue again every model whose training was interrupted."""
        pending = [name for name, store in self.stores.items() if store.pending]
        if pending:
            logger.info(f"resuming interrupted training of {pending}")
            self._queue(pending)
        return pending

    def _queue(self, models: list[str]) -> None:
        for name in models:
            self.stores[name].mark_pending(True)
        self.queue(models)
