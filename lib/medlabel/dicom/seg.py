"""DICOM SEG both ways: a labelmap to a SEG on its CT series, and any SEG back to a labelmap.

Writing uses pydicom-seg (already installed for monailabel) for a BINARY Segmentation, the kind every
viewer opens (OHIF, Slicer, dcmqi). highdicom would be the first choice, but its last release for
pydicom 2 (which monailabel 0.8.5 needs) fails under numpy 2. Reading must also take the SEGs viewers
write, including the "labelmap" kind (DICOM Supplement 243, SegmentationType LABELMAP, SOP class
...66.7: one frame per plane whose pixel values are segment numbers) that OHIF 3.13 writes and neither
monailabel 0.8.5 nor pydicom-seg reads. So the reader places each frame by its own
ImagePositionPatient on the image grid, which works alike for BINARY, FRACTIONAL and LABELMAP frames,
in any frame order and for frames cropped to part of a slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pydicom_seg
import SimpleITK as sitk
from pydicom.dataset import Dataset

from medlabel import __version__
from medlabel.errors import BadRequest

SEGMENTATION_TYPES = ("BINARY", "FRACTIONAL", "LABELMAP")
ANATOMY = {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Anatomical Structure"}
ABNORMAL = {"CodeValue": "49755003", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Morphologically Abnormal Structure"}
# SNOMED CT concepts for the structures our apps label; anything else is described as "Tissue".
PROPERTY_TYPES = {"liver": ("10200004", "Liver"), "tumour": ("108369006", "Neoplasm"),
                  "tumor": ("108369006", "Neoplasm"), "brain": ("12738006", "Brain")}
# RecommendedDisplayCIELabValue, given as RGB: viewers colour a segment with it (without one, OHIF and
# Slicer pick their own, differently). Known structures get 3D Slicer's anatomy colours, others a palette.
DISPLAY_RGB = {"liver": (221, 130, 101), "tumour": (144, 238, 144), "tumor": (144, 238, 144), "brain": (250, 250, 225)}
PALETTE = [(128, 174, 128), (241, 214, 145), (177, 122, 101), (111, 184, 210), (216, 101, 79), (183, 156, 220)]


class SegError(BadRequest):
    """A DICOM SEG that cannot be read onto its image: the message says what is wrong with it."""


def _segment(label_id: int, name: str) -> dict:
    code, meaning = PROPERTY_TYPES.get(name.lower(), ("85756007", "Tissue"))
    return {
        "labelID": label_id, "SegmentLabel": name, "SegmentDescription": name, "SegmentAlgorithmType": "MANUAL",
        "SegmentedPropertyCategoryCodeSequence": ABNORMAL if meaning == "Neoplasm" else ANATOMY,
        "SegmentedPropertyTypeCodeSequence": {"CodeValue": code, "CodingSchemeDesignator": "SCT", "CodeMeaning": meaning},
        "recommendedDisplayRGBValue": list(DISPLAY_RGB.get(name.lower(), PALETTE[(label_id - 1) % len(PALETTE)])),
    }


def write_seg(label: sitk.Image, source: Sequence[Dataset], names: Mapping[int, str], creator: str = "") -> Dataset:
    """A BINARY DICOM SEG of ``label`` (a labelmap on the grid of the CT series ``source``, one dataset a slice).

    Segment numbers equal label ids, so the SEG reads back to the same labelmap even where segment names
    are unknown to the reader; empty slices are left out.
    """
    values = sitk.GetArrayViewFromImage(label)
    present = [int(v) for v in np.unique(values) if v != 0]
    if not present:
        raise BadRequest("the label is empty: a DICOM SEG needs at least one labelled voxel")
    if present[-1] > 255:
        raise BadRequest(f"label id {present[-1]} is above 255, the most a uint8 labelmap holds")
    metainfo = {
        "ContentCreatorName": creator or "medlabel", "ClinicalTrialSeriesID": "", "ClinicalTrialTimePointID": "",
        "ClinicalTrialCoordinatingCenterName": "", "SeriesDescription": "medlabel label", "SeriesNumber": "300",
        "InstanceNumber": "1", "BodyPartExamined": "", "ContentLabel": "LABEL",
        "ContentDescription": f"medlabel {__version__} final label",
        "segmentAttributes": [[_segment(i, names.get(i, f"label {i}")) for i in present]],
    }
    writer = pydicom_seg.MultiClassWriter(template=pydicom_seg.template.from_dcmqi_metainfo(metainfo),
                                          inplane_cropping=False, skip_empty_slices=True, skip_missing_segment=False)
    return writer.write(sitk.Cast(label, sitk.sitkUInt16), list(source))


def _segment_ids(ds: Dataset, label_ids: Mapping[str, int]) -> dict[int, int]:
    """Segment number -> label id: by the segment's name where the app knows it, else its number."""
    ids = {}
    for segment in ds.SegmentSequence:
        number = int(segment.SegmentNumber)
        ids[number] = label_ids.get(str(segment.get("SegmentLabel", "")).strip().lower(), number)
        if not 0 <= ids[number] <= 255:
            raise SegError(f"segment {number} has label id {ids[number]}; ids must be 0..255")
    return ids


def _frame_attr(ds: Dataset, frame: Dataset | None, sequence: str, attr: str):
    """An attribute from a frame's functional groups, else from the shared ones (either may hold it)."""
    for groups in (frame, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if groups is not None and sequence in groups:
            return groups[sequence][0].get(attr)
    return None


def read_seg(ds: Dataset, grid: sitk.Image, label_ids: Mapping[str, int] | None = None) -> np.ndarray:
    """The (k, j, i) uint8 labelmap of a BINARY, FRACTIONAL or LABELMAP SEG on the image ``grid``.

    ``label_ids`` maps lower-case segment names to label ids (the app's labels); overlapping segments
    resolve to the later one. Raises ``SegError`` naming the problem for anything not on ``grid``.
    """
    kind = str(ds.get("SegmentationType", ""))
    if ds.get("Modality") != "SEG" or kind not in SEGMENTATION_TYPES or "SegmentSequence" not in ds:
        raise SegError(f"not a DICOM SEG of type {'/'.join(SEGMENTATION_TYPES)} (Modality "
                       f"{ds.get('Modality')!r}, SegmentationType {kind!r})")
    ids = _segment_ids(ds, {k.lower(): v for k, v in (label_ids or {}).items()})
    try:
        frames = ds.pixel_array
    except Exception as e:  # pydicom raises several types for missing or truncated pixel data
        raise SegError(f"the SEG's pixel data cannot be decoded: {e}") from None
    frames = frames.reshape(-1, *frames.shape[-2:])
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    if len(per_frame) != len(frames):
        raise SegError(f"the SEG has {len(frames)} frames but {len(per_frame)} per-frame functional groups")

    size = np.array(grid.GetSize())
    axes = np.array(grid.GetDirection()).reshape(3, 3)
    to_index = np.linalg.inv(axes * np.array(grid.GetSpacing()))
    origin = np.array(grid.GetOrigin())
    out = np.zeros(size[::-1], np.uint8)
    lut = np.zeros(max(ids, default=0) + 1, np.uint8)
    for number, label_id in ids.items():
        lut[number] = label_id
    threshold = float(ds.get("MaximumFractionalValue", 2)) / 2 if kind == "FRACTIONAL" else 0
    for f, (pixels, groups) in enumerate(zip(frames, per_frame)):
        orientation = _frame_attr(ds, groups, "PlaneOrientationSequence", "ImageOrientationPatient")
        position = _frame_attr(ds, groups, "PlanePositionSequence", "ImagePositionPatient")
        if orientation is None or position is None:
            raise SegError(f"frame {f + 1} has no plane position or orientation")
        if not np.allclose(np.asarray(orientation, float), axes[:, :2].T.ravel(), atol=1e-3):
            raise SegError(f"frame {f + 1} is oriented {list(orientation)}, its image "
                           f"{axes[:, :2].T.ravel().round(4).tolist()}: the SEG is not on this image's grid")
        ijk = to_index @ (np.asarray(position, float) - origin)
        start = np.round(ijk).astype(int)
        rows, cols = pixels.shape
        if (not np.allclose(ijk, start, atol=0.05) or np.any(start < 0) or start[2] >= size[2]
                or start[0] + cols > size[0] or start[1] + rows > size[1]):
            raise SegError(f"frame {f + 1} at {list(position)} does not lie on a slice of the image")
        if kind == "LABELMAP":
            values = lut[np.clip(pixels, 0, len(lut) - 1)] * (pixels < len(lut))
        else:
            segment = _frame_attr(ds, groups, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
            if segment is None or int(segment) not in ids:
                raise SegError(f"frame {f + 1} refers to segment {segment}, which the SEG does not describe")
            values = np.where(pixels > threshold, ids[int(segment)], 0).astype(np.uint8)
        target = out[start[2], start[1]:start[1] + rows, start[0]:start[0] + cols]
        np.copyto(target, values, where=values > 0)
    return out


def referenced_series(ds: Dataset) -> str | None:
    """The SeriesInstanceUID of the image series a SEG segments (ReferencedSeriesSequence)."""
    refs = ds.get("ReferencedSeriesSequence") or []
    return str(refs[0].SeriesInstanceUID) if refs else None
