"""A model's folder: every version of its weights, which one serves, and atomic promotion and rollback.

Layout under ``<model_dir>/<name>/``::

    spec.json            what the weights are for
    serving.pt           the serving version's weights (what inference loads)
    versions/v0003.pt    every version ever made (v0000 = the initial weights)
    registry.json        one record per version: status, metrics, labels, time, parent
    train/               monailabel's run folder

Files are only ever replaced by ``os.replace`` of a finished temp file, under a file lock shared by the
server (rollback) and the training process (promotion), so a reader never sees half a file and a
crash leaves the previous serving model in place. The store knows nothing of any kind: a kind gives it
weights and metrics; the gate rule lives here, so every kind gets versioning and promotion alike.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock

from medlabel.atomic import atomic_write_bytes, atomic_write_json
from medlabel.errors import NotFound
from medlabel.spec import BaseSpec


@dataclass
class VersionRecord:
    """What is known about one version of a model."""

    version: int
    status: str  # "serving", "retired" (served before), "rejected" (failed the gate), "initial"
    created: float
    parent: int | None = None
    labelled_images: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class GateResult:
    """The promotion decision: the candidate's and the serving model's metric on the same images."""

    promoted: bool
    candidate: float
    serving: float
    validation_images: int
    reason: str


class ModelStore:
    """Where one model's weights live, and the only code that writes them."""

    def __init__(self, model_dir: Path, spec: BaseSpec):
        self.spec = spec
        self.root = Path(model_dir) / spec.name
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"))
        spec_file = self.root / "spec.json"
        spec_json = spec.model_dump(mode="json")
        if not spec_file.exists() or json.loads(spec_file.read_text()) != spec_json:
            atomic_write_json(spec_file, spec_json)

    serving_path = property(lambda self: self.root / "serving.pt")
    train_dir = property(lambda self: self.root / "train")

    def version_path(self, version: int) -> Path:
        return self.root / "versions" / f"v{version:04d}.pt"

    # -- reading ---------------------------------------------------------------------------------------

    def records(self) -> list[VersionRecord]:
        path = self.root / "registry.json"
        return [VersionRecord(**r) for r in json.loads(path.read_text())] if path.exists() else []

    def serving_version(self) -> int:
        serving = [r.version for r in self.records() if r.status in ("serving", "initial")]
        return serving[-1] if serving else 0

    def serving_stamp(self) -> int | None:
        """Changes whenever other weights start serving; None before the initial weights exist."""
        try:
            return self.serving_path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def load_serving(self) -> dict[str, Any] | None:
        """The serving checkpoint ``{"model": state_dict, "info": {...}}``, or None before initialisation."""
        if not self.serving_path.exists():
            return None
        return torch.load(self.serving_path, map_location="cpu", weights_only=True)

    def load_version(self, version: int) -> dict[str, torch.Tensor]:
        return torch.load(self._existing(version), map_location="cpu", weights_only=True)["model"]

    # -- writing ---------------------------------------------------------------------------------------

    def ensure_initial(self, build: Callable[[], torch.nn.Module]) -> None:
        """Store reproducible initial weights as version 0 and serve them, once, for a new model."""
        with self._lock:
            if self.records():
                return
            torch.manual_seed(0)
            weights = build().state_dict()
            self._save(0, weights)
            self._write_records([VersionRecord(version=0, status="initial", created=time.time(), note="untrained")])
            self._serve(0)

    def add_candidate(self, weights: dict[str, torch.Tensor], labelled_images: int, metrics: dict[str, Any]) -> int:
        """Keep newly trained weights as the next version (not serving yet); returns its number."""
        with self._lock:
            records = self.records()
            version = max((r.version for r in records), default=0) + 1
            self._save(version, weights)
            parent = self.serving_version()
            records.append(VersionRecord(version, "candidate", time.time(), parent, labelled_images, dict(metrics)))
            self._write_records(records)
            return version

    def decide(self, version: int, gate: GateResult) -> None:
        """Serve the candidate if the gate passed, else keep it as rejected with the gate's numbers."""
        with self._lock:
            records = self.records()
            for r in records:
                if r.version == version:
                    r.metrics.update(
                        gate_candidate=gate.candidate, gate_serving=gate.serving, gate_images=gate.validation_images
                    )
                    r.note = gate.reason
                    r.status = "candidate" if gate.promoted else "rejected"
            self._write_records(records)
            if gate.promoted:
                self._promote(version, records)

    def rollback(self, version: int, note: str = "rollback") -> None:
        """Serve an earlier version again (any stored version, including a rejected one)."""
        with self._lock:
            self._existing(version)
            records = self.records()
            for r in records:
                if r.version == version:
                    r.note = f"{r.note}; {note}" if r.note else note
            self._promote(version, records)

    @property
    def pending(self) -> bool:
        """True while a queued or running training has not finished (survives a restart)."""
        return (self.root / "retrain.pending").exists()

    def mark_pending(self, pending: bool) -> None:
        marker = self.root / "retrain.pending"
        if pending:
            atomic_write_bytes(marker, str(time.time()).encode())
        else:
            marker.unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------------------

    def _existing(self, version: int) -> Path:
        path = self.version_path(version)
        if not path.exists():
            known = [r.version for r in self.records()]
            raise NotFound(f"model '{self.spec.name}' has no version {version}; versions: {known}")
        return path

    def _save(self, version: int, weights: dict[str, torch.Tensor]) -> None:
        buf = io.BytesIO()
        torch.save({"model": weights, "info": {"version": version}}, buf)
        atomic_write_bytes(self.version_path(version), buf.getvalue())

    def _serve(self, version: int) -> None:
        atomic_write_bytes(self.serving_path, self.version_path(version).read_bytes())

    def _promote(self, version: int, records: list[VersionRecord]) -> None:
        self._serve(version)
        for r in records:
            if r.version == version:
                r.status = "serving"
            elif r.status in ("serving", "initial"):
                r.status = "retired"
        self._write_records(records)

    def _write_records(self, records: list[VersionRecord]) -> None:
        atomic_write_json(self.root / "registry.json", [asdict(r) for r in records])


def gate(candidate: float, serving: float, validation_images: int) -> GateResult:
    """Promote only when validation exists and says the candidate is no worse than the serving model."""
    if validation_images == 0:
        return GateResult(False, candidate, serving, 0, "not promoted: no validation images (label at least 2)")
    if candidate >= serving:
        return GateResult(True, candidate, serving, validation_images, f"promoted: {candidate:.4f} >= {serving:.4f}")
    return GateResult(False, candidate, serving, validation_images, f"rejected: {candidate:.4f} < {serving:.4f}")
