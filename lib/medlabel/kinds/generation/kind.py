"""The generation kind's builders for ``kinds/registry.py``: one entry serves every generation spec."""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from medlabel.continual.store import ModelStore
from medlabel.datastore.local import image_size
from medlabel.errors import BadRequest
from medlabel.kinds.generation.infer import RestorationInfer, SynthesisInfer
from medlabel.kinds.generation.restore import Restorer
from medlabel.kinds.generation.spec import SynthesisSpec
from medlabel.kinds.generation.synthesis import Synthesizer
from medlabel.kinds.generation.synthesis_train import SynthesisTrain
from medlabel.kinds.generation.train import RestorationTrain
from medlabel.spec import AppSettings


def predictor(store: ModelStore) -> Any:
    """A ``Synthesizer`` for a synthesis spec, a ``Restorer`` for a restoration spec."""
    return Synthesizer(store) if isinstance(store.spec, SynthesisSpec) else Restorer(store)


def infers(predictor: Any, settings: AppSettings) -> dict[str, Any]:
    task = SynthesisInfer if isinstance(predictor, Synthesizer) else RestorationInfer
    return {predictor.spec.name: task(predictor, settings.device)}


def trainer(store: ModelStore, settings: AppSettings) -> Any:
    return (SynthesisTrain if isinstance(store.spec, SynthesisSpec) else RestorationTrain)(store, settings)


def check_label(label_path: str, image_path: str, image_id: str) -> None:
    """A generation label is an image on its image's grid: a clean target (tag ``target``) or a mask.

    ``BadRequest`` names what to fix; values must be finite.
    """
    try:
        label = sitk.ReadImage(label_path)
    except RuntimeError:
        raise BadRequest(f"the label for '{image_id}' is not a readable image (NIfTI or NRRD expected)") from None
    size, expected = tuple(label.GetSize()), image_size(image_path)
    if label.GetNumberOfComponentsPerPixel() != 1 or size != expected:
        raise BadRequest(
            f"the label for '{image_id}' has voxel size {size} with {label.GetNumberOfComponentsPerPixel()} "
            f"component(s); its image has {expected} with 1: send a single-channel image on the image's grid"
        )
    if not np.all(np.isfinite(sitk.GetArrayViewFromImage(label))):
        raise BadRequest(f"the label for '{image_id}' holds NaN or infinite values")
