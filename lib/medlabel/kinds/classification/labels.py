"""Class labels as small JSON files, ``{"classes": ["tumour"]}``: reading, checking, and as target vectors.

A label is submitted through monailabel's label endpoint like any other and versioned in the label
history; only its content differs from a mask.
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

import numpy as np

from medlabel.errors import BadRequest
from medlabel.kinds.classification.spec import ClassificationSpec


def read_classes(path: str, image_id: str = "the image") -> list[str]:
    """The class names of a label file; ``BadRequest`` says how a valid one looks."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest(f'the label for \'{image_id}\' is not JSON: send {{"classes": ["<class name>", ...]}}') from None
    classes = data.get("classes") if isinstance(data, dict) else None
    if isinstance(classes, str):
        classes = [classes]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise BadRequest(f'the label for \'{image_id}\' needs a "classes" list of class names, e.g. {{"classes": ["tumour"]}}')
    return classes


def check_classes(classes: Sequence[str], spec: ClassificationSpec, image_id: str = "the image") -> None:
    unknown = [c for c in classes if c not in spec.classes]
    if unknown:
        raise BadRequest(f"unknown class(es) {unknown} in the label for '{image_id}'; model '{spec.name}' knows "
                         f"{list(spec.classes)}")
    if len(set(classes)) != len(classes):
        raise BadRequest(f"the label for '{image_id}' names a class twice: {list(classes)}")
    if not spec.multi_label and len(classes) != 1:
        raise BadRequest(f"model '{spec.name}' is single-label: the label for '{image_id}' must name exactly one of "
                         f"{list(spec.classes)}, got {list(classes)}")


def label_check(specs: Sequence[ClassificationSpec]) -> Callable[[str, str, str], None]:
    """The label check for an app's classification models: a label must fit at least one of them."""

    def check(label_path: str, image_path: str, image_id: str) -> None:
        classes = read_classes(label_path, image_id)
        errors = []
        for spec in specs:
            try:
                return check_classes(classes, spec, image_id)
            except BadRequest as e:
                errors.append(e.message)
        raise BadRequest("; ".join(errors) if errors else "no classification model in this app")

    return check


def target_vector(classes: Sequence[str], spec: ClassificationSpec) -> np.ndarray:
    """(C,) float32 multi-hot (multi-label) or one-hot (single-label) target in the spec's class order."""
    check_classes(classes, spec)
    target = np.zeros(spec.num_classes, dtype=np.float32)
    for c in classes:
        target[spec.labels[c]] = 1.0
    return target
