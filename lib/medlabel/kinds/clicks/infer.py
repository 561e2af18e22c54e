"""Clicks as monailabel's ``InferTask`` of type ``deepgrow``: what the Slicer and OHIF point tools call."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from medlabel.errors import BadRequest
from medlabel.io.writer import write_label
from medlabel.kinds.clicks.predictor import ClickPredictor
from medlabel.runtime import pick_device
from medlabel.kinds.requests import image_path as requested_image


def parse_points(value: Any, name: str, shape: tuple[int, int, int]) -> list[list[int]]:
    """``[[i, j, k], ...]`` voxel indices as Slicer sends them (rounded RAS-to-IJK); 400 when malformed or outside."""
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(
        isinstance(p, (list, tuple)) and len(p) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
        for p in value
    ):
        raise BadRequest(f"{name} must be a list of [i, j, k] voxel indices, got {str(value)[:200]}")
    points = [[int(round(v)) for v in p] for p in value]
    for p in points:
        if any(v < 0 or v >= n for v, n in zip(p, shape)):
            raise BadRequest(f"{name} point {p} lies outside the image (shape {list(shape)})")
    return points


class ClickInfer(InferTask):
    """Segments the clicked structure: ``foreground`` / ``background`` points in, uint8 label (1) out."""

    def __init__(self, predictor: ClickPredictor, default_device: str):
        spec = predictor.spec
        super().__init__(
            type=InferType.DEEPGROW,
            labels=spec.labels,
            dimension=3,
            description=spec.description or f"Click segmentation of {spec.structure} (DeepGrow-style 3D)",
            config={"result_extension": ".nrrd", "result_dtype": "uint8"},
        )
        self.predictor = predictor
        self.default_device = default_device

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        image_path = requested_image(request)
        volume = self.predictor.images.get(image_path)
        foreground = parse_points(request.get("foreground"), "foreground", volume.shape)
        background = parse_points(request.get("background"), "background", volume.shape)
        if not foreground:
            raise BadRequest(f"add at least one foreground point on the {self.predictor.spec.structure}")
        t_read = time.perf_counter()
        label, box = self.predictor.predict(volume, foreground, background, pick_device(request.get("device"), self.default_device))
        t_net = time.perf_counter()
        path = write_label(label, volume.affine, str(request.get("result_extension") or ".nii.gz"),
                           str(request.get("result_dtype") or "uint8"))
        end = time.perf_counter()
        return path, {
            "label_names": {str(request.get("label") or self.predictor.spec.structure): 1},
            "model": self.predictor.spec.name,
            "model_version": self.predictor.version,
            "roi": [v for s in box for v in (s.start, s.stop)],
            "latencies": {"pre": round(t_read - start, 3), "infer": round(t_net - t_read, 3),
                          "write": round(end - t_net, 3), "total": round(end - start, 3)},
        }
