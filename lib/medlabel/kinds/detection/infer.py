"""Detection as monailabel infer tasks: Slicer ROI boxes with findings, and the same boxes as a labelmap.

``DetectionInfer`` (type ``detection``) answers a Slicer Markups JSON file, which the Slicer module loads
as ROI nodes by its ``.json`` extension, whatever ``result_extension`` the client asked for; the findings
rows come back in the response's params. ``LesionMapInfer`` (type ``segmentation``) draws the same boxes
into a uint8 labelmap on the image's own grid, for OHIF, which lists only segmentation-type models.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from medlabel.errors import BadRequest
from medlabel.io.writer import write_label
from medlabel.kinds.detection.boxes import world_to_voxel, write_markups
from medlabel.kinds.detection.findings import findings
from medlabel.kinds.detection.predictor import DetectionPredictor, Detections
from medlabel.runtime import pick_device
from medlabel.kinds.requests import image_path as requested_image


def boxes_to_labelmap(boxes: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 (i, j, k) labelmap on the grid ``affine``/``shape``: 1 in every voxel whose centre is in a box."""
    label = np.zeros(shape, dtype=np.uint8)
    for lo, hi in world_to_voxel(boxes, affine).reshape(-1, 2, 3):
        a, b = np.clip(np.round(lo).astype(int), 0, shape), np.clip(np.round(hi).astype(int), 0, shape)
        label[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = 1
    return label


def _score_threshold(value: object) -> float | None:
    """The request's ``score_threshold`` (0..1; 0 returns every box kept after NMS, for FROC), or None."""
    if value is None or value == "":
        return None
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0.0 <= threshold <= 1.0:
        raise BadRequest(f"score_threshold must be a number from 0 to 1, got {value!r}")
    return threshold


class _DetectionTask(InferTask):
    """Shared by both tasks: read the image, detect, time each step."""

    def __init__(self, predictor: DetectionPredictor, default_device: str, type: str, description: str, config):
        super().__init__(type=type, labels=predictor.spec.labels, dimension=3, description=description, config=config)
        self.predictor = predictor
        self.default_device = default_device

    def is_valid(self) -> bool:
        return True

    def _detect(self, request: dict[str, Any]) -> tuple[dict, Detections, dict[str, float]]:
        start = time.perf_counter()
        image_path = requested_image(request)
        device = pick_device(request.get("device"), self.default_device)
        threshold = _score_threshold(request.get("score_threshold"))
        data = self.predictor.preprocess(image_path)
        t_pre = time.perf_counter()
        detections = self.predictor.detect(data["image"], device, threshold)
        t_net = time.perf_counter()
        return data, detections, {"pre": round(t_pre - start, 3), "infer": round(t_net - t_pre, 3), "start": start}

    def _params(self, detections: Detections, latencies: dict[str, float], rows: list[dict] | None = None) -> dict:
        start = latencies.pop("start")
        latencies["total"] = round(time.perf_counter() - start, 3)
        spec = self.predictor.spec
        return {
            "label_names": spec.labels,
            "model": spec.name,
            "model_version": self.predictor.version,
            "coordinate_system": "RAS",
            "boxes_ras_mm": np.round(detections.boxes, 2).tolist(),
            "scores": np.round(detections.scores, 4).tolist(),
            **({"findings": rows} if rows is not None else {}),
            "latencies": latencies,
        }


class DetectionInfer(_DetectionTask):
    """Boxes as a Slicer Markups JSON (ROIs in LPS, as Slicer writes them) plus a findings row per box."""

    def __init__(self, predictor: DetectionPredictor, default_device: str):
        spec = predictor.spec
        super().__init__(predictor, default_device, InferType.DETECTION,
                         spec.description or f"3D detection of {', '.join(spec.label_names)} (boxes)", {})

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        data, detections, latencies = self._detect(request)
        rows = findings(detections.boxes, detections.scores, data["raw"], np.asarray(data["image"].affine))
        path = write_markups(detections.boxes, detections.scores, self.predictor.spec.label_names[0])
        return path, self._params(detections, latencies, rows)


class LesionMapInfer(_DetectionTask):
    """The same detections drawn as filled boxes in a labelmap on the image's grid (for OHIF)."""

    def __init__(self, predictor: DetectionPredictor, default_device: str):
        super().__init__(predictor, default_device, InferType.SEGMENTATION,
                         f"Detected {predictor.spec.label_names[0]} boxes drawn as a labelmap (for OHIF)",
                         {"result_extension": ".nrrd", "result_dtype": "uint8"})

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        data, detections, latencies = self._detect(request)
        meta = data["image"].meta
        shape = tuple(int(s) for s in meta["spatial_shape"])
        label = boxes_to_labelmap(detections.boxes, np.asarray(meta["original_affine"]), shape)
        path = write_label(label, np.asarray(meta["original_affine"]), str(request.get("result_extension") or ".nrrd"),
                           str(request.get("result_dtype") or "uint8"))
        return path, self._params(detections, latencies)


def detection_infers(predictor: DetectionPredictor, settings) -> dict[str, InferTask]:
    """``<name>`` answers boxes (Slicer), ``<name>_map`` the labelmap (OHIF)."""
    name = predictor.spec.name
    return {name: DetectionInfer(predictor, settings.device), f"{name}_map": LesionMapInfer(predictor, settings.device)}
