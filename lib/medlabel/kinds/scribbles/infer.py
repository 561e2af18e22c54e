"""Scribbles as monailabel's ``InferTask`` (type ``scribbles``): image and scribble label in, refined label out."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from medlabel.continual.store import ModelStore
from medlabel.errors import BadRequest
from medlabel.interactive.volume import VolumeCache, read_label, same_grid
from medlabel.io.writer import write_label
from medlabel.kinds.scribbles.prior import PriorCache
from medlabel.kinds.scribbles.refinement import refine
from medlabel.kinds.scribbles.request import parse_scribbles
from medlabel.kinds.scribbles.spec import ScribblesSpec
from medlabel.kinds.segmentation.predictor import Predictor
from medlabel.runtime import pick_device
from medlabel.kinds.requests import image_path as requested_image


class ScribblesRefiner:
    """The prior segmentation model (its serving weights, reloaded on promotion) and recently used images."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.spec: ScribblesSpec = store.spec
        self.prior = Predictor(ModelStore(store.root.parent, self.spec.prior))
        self.images = VolumeCache()
        self.priors = PriorCache()


class ScribblesInfer(InferTask):
    """Refines one structure of the prior model from foreground/background scribbles.

    Slicer's *Scribbles* section sends the label map with the scribbles, ``label_info``, ``roi`` and
    ``selected_label_name``; the answer is a uint8 label with 1 on the refined structure, on the image's
    own grid, which the module loads into that segment.
    """

    def __init__(self, refiner: ScribblesRefiner, default_device: str):
        spec = refiner.spec
        super().__init__(
            type=InferType.SCRIBBLES,
            labels=spec.labels,
            dimension=3,
            description=spec.description or f"Scribbles refinement of '{spec.prior.name}' (ISeg + graph cut)",
            config={"result_extension": ".nrrd", "result_dtype": "uint8"},
        )
        self.refiner = refiner
        self.default_device = default_device

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        image_path = requested_image(request)
        label_path = request.get("label")
        if not isinstance(label_path, str) or not os.path.exists(label_path):
            raise BadRequest("send the scribbles as the multipart file 'label' (a label map on the image's grid)")
        device = pick_device(request.get("device"), self.default_device)

        volume = self.refiner.images.get(image_path)
        label = read_label(label_path, "scribble label")
        if not same_grid(volume, label):
            raise BadRequest(
                f"the scribble label (shape {label.shape}) is not on the image's grid (shape {volume.shape}): "
                "scribbles must be painted on this image and exported with its geometry"
            )
        values = label.array if np.issubdtype(label.array.dtype, np.integer) else np.rint(label.array).astype(np.int32)
        scribbles = parse_scribbles(values, request, self.refiner.spec.labels)
        t_read = time.perf_counter()
        spec = self.refiner.spec
        prior = self.refiner.prior
        prior.network(device)  # the newest serving weights, so that the version below is theirs
        result = refine(
            volume, scribbles, spec,
            lambda box: self.refiner.priors.get(prior, image_path, volume, box, spec.context_mm, device, spec.overlap,
                                                spec.prior.labels[scribbles.structure]),
            prior_trained=prior.version > 0,
        )
        t_refine = time.perf_counter()
        path = write_label(
            result.label, volume.affine, str(request.get("result_extension") or ".nii.gz"),
            str(request.get("result_dtype") or "uint8"),
        )
        end = time.perf_counter()
        return path, {
            "label_names": {scribbles.structure: 1},
            "model": spec.prior.name,
            "model_version": self.refiner.prior.version,
            "roi": [v for s in result.box for v in (s.start, s.stop)],
            "cut_factor": result.cut_factor,
            "prior": self.refiner.priors.source,
            "latencies": {
                "pre": round(t_read - start, 3),
                "refine": round(t_refine - t_read, 3),
                **{f"refine_{k}": v for k, v in result.seconds.items()},
                "write": round(end - t_refine, 3),
                "total": round(end - start, 3),
            },
        }
