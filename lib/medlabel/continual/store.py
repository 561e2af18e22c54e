"""A model's folder: the serving weights, the training workspace, and atomic publishing.

Layout under ``<model_dir>/<name>/``: ``serving.pt`` (what inference loads), ``spec.json`` (what the
weights are for), ``train/`` (monailabel's run folder). Inference reloads when ``serving.pt`` changes;
it is only ever replaced by ``os.replace``, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from medlabel.spec import ModelSpec


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path``, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


class ModelStore:
    """Where one model's weights live, and the only code that writes them."""

    def __init__(self, model_dir: Path, spec: ModelSpec):
        self.spec = spec
        self.root = Path(model_dir) / spec.name
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.root / "spec.json", spec.model_dump(mode="json"))

    @property
    def serving_path(self) -> Path:
        return self.root / "serving.pt"

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    def serving_stamp(self) -> int | None:
        """Changes whenever new weights are published; None while the model is untrained."""
        try:
            return self.serving_path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def load_serving(self) -> dict[str, Any] | None:
        """The serving checkpoint ``{"model": state_dict, ...}``, or None while untrained."""
        if not self.serving_path.exists():
            return None
        return torch.load(self.serving_path, map_location="cpu", weights_only=True)

    def publish(self, state_dict: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        """Atomically replace the serving weights."""
        buf = io.BytesIO()
        torch.save({"model": state_dict, "info": info}, buf)
        atomic_write_bytes(self.serving_path, buf.getvalue())
