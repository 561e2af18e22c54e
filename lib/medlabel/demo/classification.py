"""Demo studies for the classification kind: 2D tiles of the real volumes with image-level classes.

- ``liver-tiles``: 32x32 mm tiles of axial slices of the real LiTS CT (every 16th slice), multi-label
  ``liver`` (at least 10% of the tile is liver) and ``tumour`` (at least 20 tumour pixels), from the
  LiTS reference segmentation.
- ``brain-tiles``: 64x64 mm tiles of axial MNI152 T1 slices (every 24 mm), single-label ``brain`` (at
  least 25% of the tile inside the brain mask) or ``no_brain``.

- ``liver-cubes``: 24^3-voxel cubes of the real LiTS CT (a 5x5x5 grid), volume-level multi-label
  ``liver`` (at least 5% liver) and ``tumour`` (at least 50 tumour voxels), for a 3D classifier.
- ``body-part``: whole axial slices, single-label ``head`` (MNI152 T1) or ``trunk`` (LiTS CT) for
  training, plus real DICOM images of other patients that ship with pydicom and pydicom-data (two head
  CTs, a chest CT crop, an abdominal MR slice, a PA chest radiograph), kept apart as split ``real``: a
  real-data check of five images, not a benchmark.

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


# The real images that ship inside PyPI packages: pydicom's own test files and pydicom-data's.
REAL_DICOM = {
    "CT_small.dcm": ("trunk", "chest CT slice around a thoracic vertebra (aorta, lung), 128x128, downsized by "
                              "pydicom from NEMA WG04 'CT1_UNC'"),
    "J2K_pixelrep_mismatch.dcm": ("head", "head CT slice at the skull base, 512x512, JPEG 2000 (pydicom issue 1149)"),
    "693_J2KI.dcm": ("head", "head CT slice, 512x512, JPEG 2000, patient ID CQ500-CT-310 (the CQ500 head CT set; "
                             "pydicom issue 693)"),
    "RG1_UNCI.dcm": ("trunk", "PA chest radiograph (CR, 1955x1841, MONOCHROME1; NEMA WG04 'RG1'), from pydicom-data, "
                              "stored at a quarter of its resolution"),
    "MR-SIEMENS-DICOM-WithOverlays.dcm": ("trunk", "axial abdominal MR slice through liver and kidneys (484x484), "
                                                   "from pydicom-data"),
}


def real_dicom(name: str) -> Path:
    """A real DICOM test file from pydicom or pydicom-data, found in the installed packages.

    ``pydicom.data.get_testdata_file`` would find both, but pydicom 2.4.5 looks up pydicom-data through
    ``pkg_resources``, which recent environments lack, so the two package folders are searched directly.
    """
    from importlib.resources import files

    for package, folder in (("pydicom.data", "test_files"), ("data_store", "data")):
        try:
            path = Path(str(files(package) / folder / name))
        except ModuleNotFoundError:
            continue
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name} is in neither pydicom's test files nor pydicom-data; run scripts/bootstrap.sh")


def dicom_pixels(path: Path, downsample: int = 1) -> np.ndarray:
    """A single-frame slice as a (columns, rows) = (x, y) float array in the modality's units (HU on CT).

    MONOCHROME1 (radiographs: dense is dark) is inverted so that dense is bright, as in every other image.
    pydicom 2.4.5 overflows on signed JPEG 2000 with Pillow as the decoder; Pillow itself returns the
    signed values shifted by 2^15, which is undone here before the rescale. ``downsample`` averages blocks.
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
    values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        values = values.max() + values.min() - values
    if downsample > 1:
        rows, columns = (n - n % downsample for n in values.shape)
        values = values[:rows, :columns].reshape(rows // downsample, downsample, columns // downsample,
                                                 downsample).mean(axis=(1, 3))
    return values.T


def dicom_slices():
    """The real DICOM slices as (X, Y, 1) images with an axial LPS -> RAS affine from pixel spacing and position.

    A radiograph has no patient position; where a file states no spacing, or 0 (``RG1_UNCI`` does), 1 mm
    per stored pixel is assumed: the classifier resizes whole images, so only the overlay's scale depends on it.
    """
    import pydicom

    for name, (body_part, _) in REAL_DICOM.items():
        path = real_dicom(name)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        downsample = -(-max(int(ds.Rows), int(ds.Columns)) // 512)  # at most 512 pixels a side
        spacing = [float(v) for v in ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (1.0, 1.0)]
        row_spacing, column_spacing = (v * downsample if v > 0 else float(downsample) for v in spacing)
        position = [float(v) for v in ds.get("ImagePositionPatient", (0, 0, 0))]
        affine = np.diag([-column_spacing, -row_spacing, float(ds.get("SliceThickness") or 1.0), 1.0])
        affine[:3, 3] = (-position[0], -position[1], position[2])
        pixels = np.round(dicom_pixels(path, downsample))[:, :, None].astype(np.int16)
        yield f"dicom_{path.stem}", pixels, affine, [body_part], "real"


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
    dicom = "\n".join(f"  - `{name}` ({part}): {what}" for name, (part, what) in REAL_DICOM.items())
    notes.append(
        "## body-part\n\n- Sources: whole axial slices of the MNI152 T1 template (`head`; "
        f"{mni.licence}) and of LiTS case 117 (`trunk`; {lits.licence}), alternate slices train / held out; and, "
        "as split `real` in `groundtruth/body-part/labels.json`, real slices of other patients, modalities and "
        "devices that ship as test files in the PyPI packages pydicom 2.4.5 and pydicom-data 1.0.0 (package licence "
        f"MIT; NEMA WG04 sample data; CQ500 data: CC BY-NC-SA 4.0):\n{dicom}\n- Few images: a real-data check, not a "
        "benchmark. The training slices are MR heads and CT trunks, so modality and body part go together there; the "
        "real CT heads, MR abdomen and radiograph test exactly that.\n")
    with open(out / "SOURCES.md", "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(notes))
    return counts
