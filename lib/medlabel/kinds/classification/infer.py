"""Classification inference as monailabel's ``InferTask``: image id in, class probabilities (JSON) and an
explanation map on the image's own grid (a float32 image a viewer overlays) out."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np
import SimpleITK as sitk
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from medlabel.errors import BadRequest
from medlabel.kinds.classification.predictor import ClassificationPredictor, to_image_grid
from medlabel.runtime import pick_device
from medlabel.kinds.requests import image_path as requested_image

MAP_EXTENSIONS = (".nrrd", ".nii.gz", ".nii")


def write_map(values_ijk: np.ndarray, image_path: str, extension: str) -> str:
    """Writes a map in (i, j[, k]) voxel order with the geometry of ``image_path`` to a new temp file."""
    if extension not in MAP_EXTENSIONS:
        raise BadRequest(f"result_extension '{extension}' is not supported for maps; use one of {list(MAP_EXTENSIONS)}")
    reader = sitk.ImageFileReader()
    reader.SetFileName(image_path)
    reader.ReadImageInformation()
    size = tuple(reader.GetSize())
    array = np.asarray(values_ijk, dtype=np.float32)
    if array.shape != size:  # ITK's size is in (i, j, k) order, like the array
        raise ValueError(f"map of shape {array.shape} does not fit the image's voxel size {size}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(*reversed(range(array.ndim)))))
    image.SetOrigin(reader.GetOrigin())
    image.SetSpacing(reader.GetSpacing())
    image.SetDirection(reader.GetDirection())
    fd, path = tempfile.mkstemp(suffix=extension, prefix="medlabel-map-")
    os.close(fd)
    sitk.WriteImage(image, path, useCompression=True)
    return path


class ClassificationInfer(InferTask):
    """Probabilities of every class in the result JSON; the map explains ``class`` (default: the top one).

    Request params: ``explain`` (default true; false answers JSON only), ``class`` (a class name),
    ``result_extension`` (``.nrrd`` default, ``.nii.gz``). The answer's ``prediction`` is stored in
    the image's datastore info, so the datastore lists it with the image.
    """

    def __init__(self, predictor: ClassificationPredictor, default_device: str):
        spec = predictor.spec
        super().__init__(
            type=InferType.CLASSIFICATION,
            labels=list(spec.classes),
            dimension=spec.dims,
            description=spec.description or f"{spec.dims}D classification: {', '.join(spec.classes)}",
            config={"result_extension": ".nrrd", "explain": True},
        )
        self.predictor = predictor
        self.default_device = default_device

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        start = time.perf_counter()
        spec = self.predictor.spec
        image_path = requested_image(request)
        device = pick_device(request.get("device"), self.default_device)
        wanted = request.get("class")
        if wanted is not None and wanted not in spec.classes:
            raise BadRequest(f"'class' must be one of {list(spec.classes)}, got {wanted!r}")

        image = self.predictor.preprocess(image_path)
        t_pre = time.perf_counter()
        prob = self.predictor.probabilities(image, device)
        t_net = time.perf_counter()
        probabilities = {c: round(float(p), 6) for c, p in zip(spec.classes, prob)}
        top = int(prob.argmax())
        predicted = [c for c, p in probabilities.items() if p >= 0.5] if spec.multi_label else [spec.classes[top]]
        result: dict[str, Any] = {
            "classes": probabilities,
            "predicted": predicted,
            "model": spec.name,
            "model_version": self.predictor.version,
            "prediction": {"classes": probabilities, "predicted": predicted},
        }
        path = None
        if request.get("explain", True) not in (False, "false", "False", 0):
            explained = spec.labels[wanted] if wanted else top
            values = self.predictor.explain(image, device, explained)
            values = to_image_grid(values, tuple(image.meta["input_shape"]))
            t_map = time.perf_counter()
            path = write_map(values.numpy(), image_path, str(request.get("result_extension") or ".nrrd"))
            result["explanation"] = {"method": spec.explanation, "class": spec.classes[explained],
                                     "latency": round(t_map - t_net, 3)}
        end = time.perf_counter()
        result["latencies"] = {"pre": round(t_pre - start, 3), "infer": round(t_net - t_pre, 3),
                               "explain": round(end - t_net, 3), "total": round(end - start, 3)}
        return path, result
