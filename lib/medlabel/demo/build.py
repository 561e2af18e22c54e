"""Writes demo study folders: unlabeled real sub-volumes for the server, ground truth kept aside.

Sub-volumes are disjoint octants of the real volume, so a model trained on some and evaluated on the
others never sees an evaluation voxel in training.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np

from medlabel.demo import classification
from medlabel.demo.nifti import save_nifti
from medlabel.demo.sources import Source, lits_117, mni152

STUDIES = {"liver-ct": lits_117, "brain-mr": mni152}


def octants(source: Source):
    """Yield (suffix, image, labels, affine) for the 8 disjoint octants of a volume."""
    shape = np.array(source.image.shape)
    half = shape // 2
    for corner in itertools.product((0, 1), repeat=3):
        start = np.array(corner) * half
        stop = np.where(np.array(corner) == 1, shape, half)
        index = tuple(slice(a, b) for a, b in zip(start, stop))
        affine = source.affine_at(start)
        suffix = "subvolume_" + "".join(f"{'xyz'[i]}{c}" for i, c in enumerate(corner))
        yield suffix, source.image[index], source.labels[index], affine



def build(out: Path, force: bool = False) -> dict[str, int]:
    """Build ``out/studies/<set>``, ``out/groundtruth/<set>``, ``out/reference`` and ``out/SOURCES.md``."""
    out = Path(out)
    if force and out.exists():
        shutil.rmtree(out)
    counts, notes = {}, []
    for study, load in STUDIES.items():
        source = load()
        for suffix, image, labels, affine in octants(source):
            name = f"{source.name}_{suffix}.nii.gz"
            save_nifti(image, affine, out / "studies" / study / name)
            save_nifti(labels, affine, out / "groundtruth" / study / name)
        save_nifti(source.image, source.affine, out / "reference" / f"{source.name}_image.nii.gz")
        save_nifti(source.labels, source.affine, out / "reference" / f"{source.name}_labels.nii.gz")
        counts[study] = 8
        names = ", ".join(f"{k}={v}" for k, v in source.label_names.items())
        notes.append(
            f"## {study}\n\n- Source: {source.origin}\n- Licence: {source.licence}\n- Labels: {names} (0 background)\n"
            f"- Studies: 8 disjoint octant sub-volumes of the real volume (`{source.name}_subvolume_*`); the whole "
            f"volume is in `reference/`.\n"
        )
    from medlabel.demo import detection  # imported here: it builds on this module's octants
    notes.append(detection.build(out, counts))
    (out / "SOURCES.md").write_text(
        "# Demo data\n\nReal images from installed packages; nothing was downloaded. `studies/<set>` holds the "
        "unlabeled images a user starts from; `groundtruth/<set>` holds the reference labels for evaluation "
        "only.\n\n" + "\n".join(notes)
    )
    counts.update(classification.build(out))
    return counts
