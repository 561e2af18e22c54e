"""Writes a NIfTI volume as a multi-slice CT DICOM series (one file per slice) with exact geometry, and a
volume computed from a series (a restored or generated image) as a derived series of the same study.

DICOMweb clients (OHIF, Orthanc, monailabel's DICOMweb datastore) only see DICOM, and no package
ships a multi-slice CT series, so the demo writes one from the real NIfTI volumes. The geometry comes
from the NIfTI affine converted to DICOM's LPS patient frame: the i axis runs along a row (columns),
the j axis down the columns (rows), slices follow k. Readers sort slices along the normal i x j, so a
right-handed affine (every scanner's, and the demo's) reads back voxel for voxel. Values are stored as
unsigned 16-bit with RescaleSlope/RescaleIntercept, exact for integer HU.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from medlabel import __version__
from medlabel.io.writer import ras_affine_to_itk

UINT16_MAX = 65535


class SeriesMeta(BaseModel):
    """Patient, study and series attributes of a written series.

    UIDs are derived from ``uid_seed`` (e.g. the file name), so writing the same volume again gives the
    same UIDs and a re-upload replaces instead of duplicating.
    """

    model_config = ConfigDict(frozen=True)

    uid_seed: str
    patient_id: str = "ANON"
    patient_name: str = "Anonymous"
    study_description: str = ""
    series_description: str = ""
    series_number: int = 1
    study_date: str = "20000101"
    body_part: str = ""


class WrittenSeries(BaseModel):
    model_config = ConfigDict(frozen=True)

    study_uid: str
    series_uid: str
    files: list[Path]


def hu_rescale(values: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) that map ``values`` onto 0..65535: slope 1 for integers that fit, exact then."""
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(values.dtype, np.integer) or bool(np.all(np.mod(values, 1) == 0)):
        intercept = np.floor(min(low, 0.0))  # the usual CT choice: air at about 0 - intercept
        if high - intercept > UINT16_MAX:
            intercept = low
        if high - intercept <= UINT16_MAX:
            return 1.0, float(intercept)
    return (high - low) / UINT16_MAX or 1.0, low


def _uid(seed: str, *parts: object) -> str:
    return generate_uid(entropy_srcs=[seed, *map(str, parts)])


def write_series(nifti: Path, out_dir: Path, meta: SeriesMeta) -> WrittenSeries:
    """Writes ``nifti`` (a 3D volume) to ``out_dir/<k>.dcm``, one CT slice per k, and returns the UIDs."""
    image = nib.load(str(nifti))
    values = np.asarray(image.dataobj)
    if values.ndim != 3:
        raise ValueError(f"{nifti}: a 3D volume is needed, got shape {values.shape}")
    origin, spacing, direction = (np.asarray(v, dtype=np.float64) for v in ras_affine_to_itk(image.affine))
    uids = _uid(meta.uid_seed, "study"), _uid(meta.uid_seed, "series"), _uid(meta.uid_seed, "frame")
    return _write_slices(values, origin, spacing, direction.reshape(3, 3), out_dir, meta, *uids)


def write_derived_series(image: sitk.Image, source: Sequence[Dataset], out_dir: Path, derivation: str,
                         series_description: str) -> WrittenSeries:
    """Writes a volume computed from the series ``source`` (its instances' headers) as a new series of the
    same study: new SeriesInstanceUID, same StudyInstanceUID, patient and frame of reference, with
    ``DerivationDescription`` and, per slice, a ``SourceImageSequence`` naming the source slice nearest to it.

    The series UID is derived from the source series and ``derivation``, so writing the same result again
    replaces it in the PACS instead of adding a copy.
    """
    if image.GetDimension() != 3 or not source:
        raise ValueError("a 3D image and the source series' instances are needed")
    first = source[0]
    seed = f"{first.SeriesInstanceUID}/{derivation}"
    meta = SeriesMeta(uid_seed=seed, patient_id=str(first.get("PatientID", "ANON")),
                      patient_name=str(first.get("PatientName", "Anonymous")),
                      study_description=str(first.get("StudyDescription", "")), series_description=series_description,
                      series_number=int(first.get("SeriesNumber") or 0) + 1000,
                      study_date=str(first.get("StudyDate") or "20000101"), body_part=str(first.get("BodyPartExamined", "")))
    values = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (i, j, k)
    axes = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    normal = np.cross(axes[:, 0], axes[:, 1])
    source_at = np.array([float(np.asarray(d.ImagePositionPatient, dtype=float) @ normal) for d in source])

    def provenance(ds: Dataset, position: np.ndarray) -> None:
        ds.DerivationDescription = derivation[:1024]
        nearest = source[int(np.argmin(np.abs(source_at - position @ normal)))]
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = nearest.SOPClassUID, nearest.SOPInstanceUID
        ds.SourceImageSequence = [ref]

    return _write_slices(values, np.array(image.GetOrigin()), np.array(image.GetSpacing()), axes, out_dir, meta,
                         str(first.StudyInstanceUID), _uid(seed, "series"),
                         str(first.get("FrameOfReferenceUID") or _uid(seed, "frame")), provenance)


def _write_slices(values: np.ndarray, origin: np.ndarray, spacing: np.ndarray, axes: np.ndarray, out_dir: Path,
                  meta: SeriesMeta, study_uid: str, series_uid: str, frame_uid: str,
                  per_slice: Callable[[Dataset, np.ndarray], None] | None = None) -> WrittenSeries:
    """``values`` (i, j, k) in LPS geometry (``axes``: columns are the unit i, j, k axes), one file per k."""
    slope, intercept = hu_rescale(values)
    stored = np.round((values.astype(np.float64) - intercept) / slope).clip(0, UINT16_MAX).astype(np.uint16)
    center, width = (float(values.min()) + float(values.max())) / 2, float(values.max()) - float(values.min())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(values.shape[2]):
        position = origin + k * spacing[2] * axes[:, 2]
        ds = _slice_dataset(meta, study_uid, series_uid, frame_uid, _uid(meta.uid_seed, "slice", k))
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*axes[:, 0], *axes[:, 1])]
        ds.SliceLocation = f"{float(position @ np.cross(axes[:, 0], axes[:, 1])):.6f}"
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # row spacing (j), column spacing (i)
        ds.SliceThickness = ds.SpacingBetweenSlices = f"{spacing[2]:.6f}"
        ds.Rows, ds.Columns = values.shape[1], values.shape[0]
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
        ds.WindowCenter, ds.WindowWidth = f"{center:.1f}", f"{max(width, 1.0):.1f}"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # rows = j, columns = i
        if per_slice:
            per_slice(ds, position)
        path = out_dir / f"{k:04d}.dcm"
        ds.save_as(str(path), write_like_original=False)
        files.append(path)
    return WrittenSeries(study_uid=study_uid, series_uid=series_uid, files=files)


def _slice_dataset(meta: SeriesMeta, study_uid: str, series_uid: str, frame_uid: str, sop_uid: str) -> FileDataset:
    """A CT Image dataset with every attribute but the per-slice geometry and pixels."""
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = CTImageStorage
    file_meta.MediaStorageSOPInstanceUID = sop_uid
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", {}, file_meta=file_meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    now = datetime.datetime.now()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.Modality, ds.ImageType = "CT", ["DERIVED", "SECONDARY", "AXIAL"]
    ds.Manufacturer, ds.SoftwareVersions = "medlabel", __version__
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = meta.patient_name, meta.patient_id, "", ""
    ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber = study_uid, "1", ""
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = meta.study_date, "120000", ""
    ds.StudyDescription, ds.BodyPartExamined = meta.study_description, meta.body_part
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, meta.series_number, meta.series_description
    ds.SeriesDate, ds.SeriesTime, ds.AcquisitionNumber = meta.study_date, "120000", 1
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleType, ds.KVP = "HU", ""
    return ds


def write_studies(studies_dir: Path, out_dir: Path, patient_id: str = "LITS117") -> dict[str, WrittenSeries]:
    """Every ``*.nii.gz`` in ``studies_dir`` as its own study and series under ``out_dir/<name>/``.

    Keyed by the NIfTI's name without extension; one patient, so a PACS lists them together.
    """
    written = {}
    for number, nifti in enumerate(sorted(Path(studies_dir).glob("*.nii.gz")), start=1):
        name = nifti.name.removesuffix(".nii.gz")
        meta = SeriesMeta(
            uid_seed=f"medlabel-demo/{name}", patient_id=patient_id, patient_name=patient_id,
            study_description=name, series_description=f"CT {name}", series_number=number, body_part="ABDOMEN",
        )
        written[name] = write_series(nifti, Path(out_dir) / name, meta)
    return written
