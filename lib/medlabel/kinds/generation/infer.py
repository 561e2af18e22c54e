"""Generation inference as monailabel ``InferTask``s: image id in, generated image file out.

The result is also kept as a new datastore image (``derived_image`` in the answer, stored by the app)
with its provenance, so 3D Slicer and OHIF open it like any other image. ``/info`` lists these models
with type ``generation`` (monailabel's ``InferType`` is a plain string; no viewer mistakes them for
segmentation models).
"""

from __future__ import annotations

import os
import time
from typing import Any

import SimpleITK as sitk
from monailabel.interfaces.tasks.infer_v2 import InferTask

from medlabel.errors import BadRequest
from medlabel.kinds.generation.restore import Restorer
from medlabel.kinds.generation.spec import Denoise, RestorationSpec
from medlabel.kinds.generation.synthesis import Synthesizer, check_mask
from medlabel.kinds.generation.writer import array_ijk, read_volume, same_geometry, thin_grid, write_volume
from medlabel.runtime import pick_device
from medlabel.kinds.requests import image_path

GENERATION_TYPE = "generation"


def number_param(request: dict, name: str, default: float) -> float:
    value = request.get(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"'{name}' must be a number, got {value!r}") from None


def restoration_level(spec: RestorationSpec, request: dict) -> tuple[str, float]:
    """The request's noise level or thinning factor, checked against what the model was trained for."""
    d = spec.degradation
    if isinstance(d, Denoise):
        level = number_param(request, "noise_level_hu", d.default_noise_hu)
        if not d.min_noise_hu <= level <= d.max_noise_hu:
            raise BadRequest(f"noise_level_hu must be within {d.min_noise_hu:g}..{d.max_noise_hu:g} HU (the range "
                             f"'{spec.name}' was trained on), got {level:g}")
        return "noise_level_hu", level
    factor = number_param(request, "scale_factor", d.default_factor)
    if factor not in d.factors:
        raise BadRequest(f"scale_factor must be one of {list(d.factors)} (the factors '{spec.name}' was trained "
                         f"on), got {factor:g}")
    return "scale_factor", int(factor)


class RestorationInfer(InferTask):
    """Restores the image (denoised, or with thinner slices) and returns it as NRRD or NIfTI."""

    def __init__(self, restorer: Restorer, default_device: str):
        spec = restorer.spec
        d = spec.degradation
        config: dict[str, Any] = {"result_extension": ".nrrd"}
        if isinstance(d, Denoise):
            config["noise_level_hu"] = d.default_noise_hu
            what = f"CT denoising for added noise of {d.min_noise_hu:g}-{d.max_noise_hu:g} HU"
        else:
            config["scale_factor"] = d.default_factor
            what = f"CT through-plane super-resolution x{'/x'.join(map(str, d.factors))}"
        super().__init__(type=GENERATION_TYPE, labels=[], dimension=3, description=spec.description or what,
                         config=config)
        self.restorer = restorer
        self.default_device = default_device

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        spec = self.restorer.spec
        name, level = restoration_level(spec, request)
        extension = str(request.get("result_extension") or ".nrrd")
        image = read_volume(image_path(request))
        device = pick_device(request.get("device"), self.default_device)
        t_read = time.perf_counter()
        restored = self.restorer.restore_hu(array_ijk(image), level, device)
        t_net = time.perf_counter()
        geometry = same_geometry(image) if isinstance(spec.degradation, Denoise) else thin_grid(image, int(level))
        path = write_volume(restored, geometry, image, extension)
        end = time.perf_counter()
        version = self.restorer.version
        tag = f"n{level:g}" if isinstance(spec.degradation, Denoise) else f"x{level}"
        return path, {
            "model": spec.name,
            "model_version": version,
            name: level,
            "derived_image": {
                "suffix": f"{spec.name}_v{version}_{tag}",
                "info": {"model": spec.name, "model_version": version, "task": spec.task, "params": {name: level}},
            },
            "latencies": {"read": round(t_read - start, 3), "infer": round(t_net - t_read, 3),
                          "write": round(end - t_net, 3), "total": round(end - start, 3)},
        }


def int_param(request: dict, name: str, default: int, low: int, high: int) -> int:
    value = request.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"'{name}' must be an integer, got {value!r}") from None
    if number != float(value) or not low <= number <= high:
        raise BadRequest(f"{name} must be an integer within {low}..{high}, got {value!r}")
    return number


class SynthesisInfer(InferTask):
    """Generates a CT image for a label mask (the ``label`` file of the request, on the image's grid).

    ``steps`` (DDIM sampling steps) and ``seed`` are parameters; the image comes back on the mask's grid and
    is kept as a new datastore image whose final label is the mask: a synthetic training pair.
    """

    def __init__(self, synthesizer: Synthesizer, default_device: str):
        spec = synthesizer.spec
        super().__init__(type=GENERATION_TYPE, labels=spec.labels, dimension=3,
                         description=spec.description or f"CT synthesis from a mask of {', '.join(spec.label_names)}",
                         config={"result_extension": ".nrrd", "steps": spec.default_steps, "seed": 0})
        self.synthesizer = synthesizer
        self.default_device = default_device

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        spec = self.synthesizer.spec
        steps = int_param(request, "steps", spec.default_steps, 1, spec.max_steps)
        seed = int_param(request, "seed", 0, 0, 2**31 - 1)
        extension = str(request.get("result_extension") or ".nrrd")
        reference = read_volume(image_path(request))
        mask_path = request.get("label")
        if not isinstance(mask_path, str) or not os.path.exists(mask_path):
            raise BadRequest("send the label mask to generate from as the request's 'label' file")
        try:
            mask = sitk.ReadImage(mask_path)
        except RuntimeError:
            raise BadRequest("the mask is not a readable image (NIfTI or NRRD expected)") from None
        check_mask(mask, reference, spec, str(request.get("image_id", "the image")))
        mask.CopyInformation(reference)  # the mask is drawn on the image: its geometry is the image's
        device = pick_device(request.get("device"), self.default_device)
        generated = self.synthesizer.generate_hu(mask, steps, seed, device)
        path = write_volume(generated.transpose(2, 1, 0), same_geometry(reference), reference, extension)
        version = self.synthesizer.version
        provenance = {"model": spec.name, "model_version": version, "task": "synthesis",
                      "params": {"steps": steps, "seed": seed}}
        return path, {
            "model": spec.name,
            "model_version": version,
            "steps": steps,
            "seed": seed,
            "derived_image": {"suffix": f"{spec.name}_v{version}_s{seed}_t{steps}", "info": provenance,
                              "label": mask_path},
            "latencies": {"total": round(time.perf_counter() - start, 3)},
        }
