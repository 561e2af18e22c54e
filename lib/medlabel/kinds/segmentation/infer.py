"""Segmentation inference as monailabel's ``InferTask``: image id in, uint8 label file out."""

from __future__ import annotations

import time
from typing import Any

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from medlabel.io.resample import probabilities_to_label
from medlabel.io.writer import write_label
from medlabel.kinds.segmentation.answers import LAST_ANSWERS
from medlabel.kinds.segmentation.predictor import Predictor
from medlabel.runtime import pick_device
from medlabel.kinds.requests import image_path as requested_image


class SegmentationInfer(InferTask):
    """Normalise geometry, infer by sliding window, restore the label onto the image's own grid.

    Answers ``result_extension`` (``.nrrd`` for Slicer and OHIF, ``.nii.gz``) and ``result_dtype``
    (``uint8``) as the clients ask; the result always has the input image's voxel grid and order.
    """

    def __init__(self, predictor: Predictor, default_device: str):
        spec = predictor.spec
        super().__init__(
            type=InferType.SEGMENTATION,
            labels=spec.labels,
            dimension=3,
            description=spec.description or f"3D segmentation of {', '.join(spec.label_names)}",
            config={"result_extension": ".nrrd", "result_dtype": "uint8"},
        )
        self.predictor = predictor
        self.default_device = default_device

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        image_path = requested_image(request)
        device = pick_device(request.get("device"), self.default_device)

        image = self.predictor.preprocess(image_path)
        t_pre = time.perf_counter()
        prob = self.predictor.probabilities(image, device)
        t_net = time.perf_counter()
        label = probabilities_to_label(
            prob, image.affine.numpy(), image.meta["original_affine"], tuple(int(s) for s in image.meta["spatial_shape"])
        )
        LAST_ANSWERS.put(self.predictor, self.predictor.version, image_path, prob, image.affine.numpy())  # for scribbles
        t_restore = time.perf_counter()
        path = write_label(
            label,
            image.meta["original_affine"],
            str(request.get("result_extension") or ".nii.gz"),
            str(request.get("result_dtype") or "uint8"),
        )
        end = time.perf_counter()
        return path, {
            "label_names": self.predictor.spec.labels,
            "model": self.predictor.spec.name,
            "model_version": self.predictor.version,
            "latencies": {
                "pre": round(t_pre - start, 3),
                "infer": round(t_net - t_pre, 3),
                "restore": round(t_restore - t_net, 3),
                "write": round(end - t_restore, 3),
                "total": round(end - start, 3),
            },
        }
