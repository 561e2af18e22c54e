"""Demo studies for the classification kind: 2D tiles of the real volumes with image-level classes.

- ``liver-tiles``: 32x32 mm tiles of axial slices of the real LiTS CT (every 16th slice), multi-label
  ``liver`` (at least 10% of the tile is liver) and ``tumour`` (at least 20 tumour pixels), from the
  LiTS reference segmentation.
- ``brain-tiles``: 64x64 mm tiles of axial MNI152 T1 slices (every 24 mm), single-label ``brain`` (at
  least 25% of the tile inside the brain mask) or ``no_brain``.

- ``liver-cubes``: 24^3-voxel cubes of the real LiTS CT (a 5x5x5 grid), volume-level multi-label
  ``liver`` (at least 5% liver) and ``tumour`` (at least 50 tumour voxels), for a 3D classifier.
- ``body-part``: whole axial slices, single-label ``head`` (MNI152 T1) or ``trunk`` (LiTS CT) for
  training, plus the only real CT slices that ship with pydicom (two head CTs, one chest CT crop),
  kept apart as split ``real``: a real-data check of three images, not a benchmark.

Each tile is an (X, Y, 1) NIfTI that keeps its place in the volume (the slice's affine, shifted), so
a map on it overlays on the source volume too. ``groundtruth/<set>/labels.json`` holds every image's
classes and its split: tiles of alternate slices (cubes of alternate slabs) are ``train`` and
``heldout``, so no held-out voxel is ever in a training image.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medlabel.demo.nifti import save_nifti
from medlabel.demo.sources import Source, lits_117, mni152


def tiles(source: Source, tile: int, slice_step: int, first_slice: int):
    """Yield (k, i, j, image tile (X, Y, 1), label tile, affine) on axial slices k = first, first + step, ..."""
    nx, ny, nz = source.image.shape
    for k in range(first_slice, nz, slice_step):
        for i in range(0, nx - tile + 1, tile):
            for j in range(0, ny - tile + 1, tile):
                affine = source.affine_at((i, j, k))
                yield k, i, j, source.image[i:i + tile, j:j + tile, k:k + 1], source.labels[i:i + tile, j:j + tile, k], affine


def liver_classes(labels: np.ndarray) -> list[str]:
    return [c for c, present in (("liver", (labels >= 1).mean() >= 0.1), ("tumour", (labels == 2).sum() >= 20)) if present]


def brain_classes(labels: np.ndarray) -> list[str]:
    return ["brain" if (labels >= 1).mean() >= 0.25 else "no_brain"]


SETS = {
    "liver-tiles": (lits_117, 32, 16, 4, liver_classes, "multi-label: liver, tumour"),
    "brain-tiles": (mni152, 64, 24, 10, brain_classes, "single-label: brain, no_brain"),
}


def _write(out: Path, name: str, images: Iterable[tuple[str, np.ndarray, np.ndarray, list[str], str]]) -> int:
    """Write (id, image, affine, classes, split) to ``studies/<name>`` and ``groundtruth/<name>/labels.json``."""
    truth: dict[str, dict] = {}
    for image_id, image, affine, classes, split in images:
        save_nifti(image, affine, out / "studies" / name / f"{image_id}.nii.gz")
        truth[image_id] = {"classes": classes, "split": split}
    (out / "groundtruth" / name).mkdir(parents=True, exist_ok=True)
    (out / "groundtruth" / name / "labels.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    return len(truth)


def _tile_set(source: Source, size: int, step: int, first: int, classify):
    slices = list(range(first, source.image.shape[2], step))
    for k, i, j, image, labels, affine in tiles(source, size, step, first):
        split = "train" if slices.index(k) % 2 == 0 else "heldout"
        yield f"{source.name}_k{k:03d}_i{i:03d}_j{j:03d}", image, affine, classify(labels), split


def cube_classes(labels: np.ndarray) -> list[str]:
    return [c for c, present in (("liver", (labels >= 1).mean() >= 0.05), ("tumour", (labels == 2).sum() >= 50)) if present]


def cubes(source: Source, size: int):
    """Disjoint size^3 cubes on a grid; cubes of even slabs (k // size) train, odd slabs are held out."""
    nx, ny, nz = source.image.shape
    for i in range(0, nx - size + 1, size):
        for j in range(0, ny - size + 1, size):
            for k in range(0, nz - size + 1, size):
                index = (slice(i, i + size), slice(j, j + size), slice(k, k + size))
                affine = source.affine_at((i, j, k))
                split = "train" if (k // size) % 2 == 0 else "heldout"
                yield (f"{source.name}_cube_i{i:03d}_j{j:03d}_k{k:03d}", source.image[index], affine,
                       cube_classes(source.labels[index]), split)


def whole_slices(source: Source, ks: range, body_part: str):
    """Whole axial slices as (X, Y, 1) images with one body part; alternate slices train and are held out."""
    for n, k in enumerate(ks):
        affine = source.affine_at((0, 0, k))
        yield (f"{source.name}_slice_k{k:03d}", source.image[:, :, k:k + 1], affine, [body_part],
               "train" if n % 2 == 0 else "heldout")


# The real CT slices that ship with pydicom 2.4.5 (pydicom-data, with its radiographs, is not installed here).
DICOM_SLICES = {
    "CT_small.dcm": ("trunk", "chest CT slice around a thoracic vertebra (aorta, lung), 128x128, downsized by "
                              "pydicom from NEMA WG04 'CT1_UNC'"),
    "J2K_pixelrep_mismatch.dcm": ("head", "head CT slice at the skull base, 512x512, JPEG 2000 (pydicom issue 1149)"),
    "693_J2KI.dcm": ("head", "head CT slice, 512x512, JPEG 2000, patient ID CQ500-CT-310 (the CQ500 head CT set; "
                             "pydicom issue 693)"),
}


def dicom_hu(path: Path) -> np.ndarray:
    """A CT slice in HU as a (columns, rows) = (x, y) array.

    pydicom 2.4.5 overflows on signed JPEG 2000 with Pillow as the decoder; Pillow itself returns the
    signed values shifted by 2^15, which is undone here before the rescale.
    """
    import pydicom
    from pydicom.encaps import generate_pixel_data_frame
    from pydicom.pixel_data_handlers.util import apply_modality_lut

    ds = pydicom.dcmread(path)
    try:
        raw = ds.pixel_array.astype(np.int32)
    except OverflowError:
        from PIL import Image

        frame = next(generate_pixel_data_frame(ds.PixelData))
        raw = np.asarray(Image.open(io.BytesIO(frame))).astype(np.int32) - 2**15
    return np.asarray(apply_modality_lut(raw, ds), dtype=np.float32).T


def dicom_slices():
    """The pydicom CT slices as (X, Y, 1) images with an axial LPS -> RAS affine from pixel spacing and position."""
    import pydicom

    for name, (body_part, _) in DICOM_SLICES.items():
        path = Path(pydicom.data.get_testdata_file(name))
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)  # along y, along x
        position = [float(v) for v in ds.get("ImagePositionPatient", (0, 0, 0))]
        affine = np.diag([-column_spacing, -row_spacing, float(ds.get("SliceThickness") or 1.0), 1.0])
        affine[:3, 3] = (-position[0], -position[1], position[2])
        yield f"dicom_{path.stem}", np.round(dicom_hu(path))[:, :, None].astype(np.int16), affine, [body_part], "real"


def body_part_images(mni: Source, lits: Source):
    yield from whole_slices(mni, range(20, 170, 6), "head")
    yield from whole_slices(lits, range(0, 128, 5), "trunk")
    yield from dicom_slices()


def build(out: Path) -> dict[str, int]:
    """Write ``studies/<set>`` and ``groundtruth/<set>/labels.json`` for each set; append to SOURCES.md."""
    out = Path(out)
    counts, notes = {}, []
    for name, (load, size, step, first, classify, kind) in SETS.items():
        source = load()
        counts[name] = _write(out, name, _tile_set(source, size, step, first, classify))
        notes.append(f"## {name}\n\n- Source: {source.origin}\n- Licence: {source.licence}\n- {counts[name]} tiles of "
                     f"{size}x{size} voxels on every {step}th axial slice; classes ({kind}) from the reference labels "
                     f"in `groundtruth/{name}/labels.json`, with a train / held-out split by slice.\n")
    lits, mni = lits_117(), mni152()
    counts["liver-cubes"] = _write(out, "liver-cubes", cubes(lits, 24))
    notes.append(f"## liver-cubes\n\n- Source: {lits.origin}\n- Licence: {lits.licence}\n- {counts['liver-cubes']} "
                 "disjoint 24x24x24-voxel cubes (3D, volume-level classes; multi-label: liver >= 5% of the cube, "
                 "tumour >= 50 voxels) from the reference labels; cubes of alternate 24-slice slabs are train / "
                 "held out.\n")
    counts["body-part"] = _write(out, "body-part", body_part_images(mni, lits))
    dicom = "\n".join(f"  - `{name}` ({part}): {what}" for name, (part, what) in DICOM_SLICES.items())
    notes.append(
        "## body-part\n\n- Sources: whole axial slices of the MNI152 T1 template (`head`; "
        f"{mni.licence}) and of LiTS case 117 (`trunk`; {lits.licence}), alternate slices train / held out; and, "
        "as split `real` in `groundtruth/body-part/labels.json`, the three real CT slices that ship as test files "
        "in the PyPI package pydicom 2.4.5 (package licence MIT; NEMA WG04 sample data; CQ500 data: CC BY-NC-SA "
        f"4.0):\n{dicom}\n- Few images: a real-data check of three CT slices, not a benchmark. The training slices "
        "are MR heads and CT trunks, so modality and body part go together there.\n")
    with open(out / "SOURCES.md", "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(notes))
    return counts
