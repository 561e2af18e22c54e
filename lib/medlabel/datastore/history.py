"""Label history: every submitted label kept as a numbered version, never overwritten.

Layout under the studies folder: ``.medlabel/label-history/<image_id>/v0001.nii.gz`` ... and an index
``versions.json`` per image. A version file is written and renamed into place before the index names it,
and the index itself is replaced atomically, so a crash leaves either the old or the new history, whole.
The ``final`` label that monailabel trains on is a copy of the newest final version.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medlabel.atomic import atomic_copy, atomic_write_json
from medlabel.errors import NotFound


@dataclass(frozen=True)
class LabelVersion:
    """One submitted label: who, when, and which model prediction it corrects."""

    version: int
    file: str
    tag: str
    submitted_by: str
    ts: float
    model: str | None = None
    model_version: int | None = None


class LabelHistory:
    """Versioned labels of every image in one studies folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock = threading.Lock()

    def _dir(self, image_id: str) -> Path:
        return self.root / image_id

    def versions(self, image_id: str) -> list[LabelVersion]:
        """All versions of an image's labels, oldest first (empty when never labelled)."""
        index = self._dir(image_id) / "versions.json"
        if not index.exists():
            return []
        return [LabelVersion(**v) for v in json.loads(index.read_text())]

    def add(self, image_id: str, label_file: str, ext: str, tag: str, info: dict[str, Any]) -> LabelVersion:
        """Store ``label_file`` as the image's next version and return its record."""
        with self._lock:
            folder = self._dir(image_id)
            folder.mkdir(parents=True, exist_ok=True)
            existing = self.versions(image_id)
            number = existing[-1].version + 1 if existing else 1
            name = f"v{number:04d}{ext}"
            atomic_copy(label_file, folder / name)
            record = LabelVersion(
                version=number,
                file=name,
                tag=tag,
                submitted_by=str(info.get("client_id") or info.get("user") or "anonymous"),
                ts=time.time(),
                model=info.get("model"),
                model_version=info.get("model_version"),
            )
            atomic_write_json(folder / "versions.json", [asdict(v) for v in [*existing, record]])
            return record

    def path(self, image_id: str, version: int) -> Path:
        """The file of one version; ``NotFound`` naming what exists otherwise."""
        for v in self.versions(image_id):
            if v.version == version:
                return self._dir(image_id) / v.file
        raise NotFound(f"image '{image_id}' has no label version {version}")

    def count(self, tag: str = "final") -> int:
        """Number of versions with ``tag`` over all images (the retraining trigger counts these)."""
        if not self.root.exists():
            return 0
        return sum(
            1 for folder in self.root.iterdir() if folder.is_dir() for v in self.versions(folder.name) if v.tag == tag
        )
