"""Demo studies for lesion detection: real CT octants with boxes of their real tumours, plus synthetic copies.

``studies/liver-lesions`` holds the 8 real LiTS octants and, made from the 6 training octants only,
``synthetic_*`` copies with hypodense spherical lesions inserted inside the liver at known places (to
have more lesions to learn from). ``groundtruth/liver-lesions/<id>.json`` are the reference boxes as Slicer
ROI markups: real tumour components (>= ``MIN_LESION_MM3``) and, in the synthetic copies, the inserted
lesions too (named ``synthetic lesion``). The two ``HELD_OUT`` octants have no synthetic copy, so
evaluation on them measures real lesions only, never seen in training in any form.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from medlabel.demo.build import octants
from medlabel.demo.nifti import save_nifti
from medlabel.demo.sources import lits_117
from medlabel.kinds.detection.boxes import boxes_to_markups, mask_to_boxes, voxel_to_world

STUDY = "liver-lesions"
HELD_OUT = ("lits117_subvolume_x1y1z0", "lits117_subvolume_x1y0z1")
MIN_LESION_MM3 = 65.0
TUMOUR = 2
SYNTHETIC_PER_IMAGE = 3
RADII_MM = (3.5, 6.0)


def insert_lesions(image: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Copies ``image`` with ``count`` soft-edged spheres at tumour intensity (median of the real tumours in
    this image's source, with noise) inside the liver, away from real tumours; returns it and (count, 6)
    MONAI voxel boxes of the spheres (1 mm voxels)."""
    rng = np.random.default_rng(seed)
    tumour_hu = 69.0  # median HU of LiTS 117's tumour voxels
    out = image.astype(np.float32).copy()
    free = (labels == 1) & ~ndimage.binary_dilation(labels == TUMOUR, iterations=4)
    boxes, grid = [], np.indices(image.shape, dtype=np.float32)
    for _ in range(count):
        radius = rng.uniform(*RADII_MM)
        inner = ndimage.binary_erosion(free, iterations=int(np.ceil(radius)) + 1)
        candidates = np.argwhere(inner)
        if not len(candidates):
            break
        centre = candidates[rng.integers(len(candidates))].astype(np.float32)
        distance = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
        weight = np.clip(radius + 0.5 - distance, 0.0, 1.0)  # one-voxel soft edge
        texture = tumour_hu + rng.normal(0.0, 12.0, image.shape)
        out = out * (1 - weight) + texture * weight
        free &= distance > radius + 4
        boxes.append(np.concatenate([centre - radius + 0.5, centre + radius + 0.5]))
    return np.round(out).astype(image.dtype), np.array(boxes).reshape(-1, 6)


def _write_boxes(real: np.ndarray, synthetic: np.ndarray, path: Path) -> None:
    markups = boxes_to_markups(real, name="lesion")["markups"]
    markups += boxes_to_markups(synthetic, name="synthetic lesion")["markups"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**boxes_to_markups(np.zeros((0, 6))), "markups": markups}, indent=1))


def build(out: Path, counts: dict[str, int]) -> str:
    """Writes the detection studies and reference boxes; records the count and returns SOURCES.md's section."""
    source = lits_117()
    studies, truth = Path(out) / "studies" / STUDY, Path(out) / "groundtruth" / STUDY
    n = 0
    for seed, (suffix, image, labels, affine) in enumerate(octants(source)):
        name = f"{source.name}_{suffix}"
        real = mask_to_boxes(labels, affine, TUMOUR, MIN_LESION_MM3)
        save_nifti(image, affine, studies / f"{name}.nii.gz")
        _write_boxes(real, np.zeros((0, 6)), truth / f"{name}.json")
        n += 1
        if name in HELD_OUT:
            continue
        synthetic_image, voxel_boxes = insert_lesions(image, labels, SYNTHETIC_PER_IMAGE, seed)
        if not len(voxel_boxes):  # no room in the liver (an octant without liver): no copy
            continue
        save_nifti(synthetic_image, affine, studies / f"synthetic_{name}.nii.gz")
        _write_boxes(real, voxel_to_world(voxel_boxes, affine), truth / f"synthetic_{name}.json")
        n += 1
    counts[STUDY] = n
    return (
        f"## {STUDY}\n\n- Source: the `liver-ct` octants (LiTS 117) and synthetic copies of them\n"
        f"- Reference boxes: `groundtruth/{STUDY}/<id>.json`, Slicer ROI markups (LPS) of the real tumour "
        f"components of at least {MIN_LESION_MM3:g} mm^3 and, in `synthetic_*` copies, of "
        f"{SYNTHETIC_PER_IMAGE} hypodense spheres (radius {RADII_MM[0]:g}-{RADII_MM[1]:g} mm) inserted inside "
        f"the liver at known places\n- Held out from any synthetic copy (evaluate real lesions on these): "
        f"{', '.join(HELD_OUT)}\n"
    )
