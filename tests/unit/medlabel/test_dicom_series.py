import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medlabel.dicom.series import SeriesMeta, hu_rescale, write_derived_series, write_series


def _read_series(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _nifti(tmp_path, values, affine):
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(values, affine), path)
    return path


AXIAL = np.diag([1.0, -1.0, -1.0, 1.0])  # the demo CT: +i right, +j posterior, +k inferior
OBLIQUE = np.array([[0.0, -0.8, 0.6 * 2.5, 10.0], [0.7, 0.0, 0.0, -20.0], [0.0, 0.6, 0.8 * 2.5, 30.0], [0, 0, 0, 1]])


@pytest.mark.parametrize("affine", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_simpleitk_reads_the_series_back_voxel_exact(tmp_path, affine):
    rng = np.random.default_rng(0)
    values = rng.integers(-1024, 2000, size=(7, 5, 4)).astype(np.int16)
    nifti = _nifti(tmp_path, values, affine)
    written = write_series(nifti, tmp_path / "dcm", SeriesMeta(uid_seed="t", patient_id="P1"))

    series = _read_series(tmp_path / "dcm")
    reference = sitk.ReadImage(str(nifti))
    assert len(written.files) == 4
    assert series.GetSize() == reference.GetSize() == (7, 5, 4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(series), sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(series.GetOrigin(), reference.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(series.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(series.GetDirection(), reference.GetDirection(), atol=1e-6)


def test_slices_carry_patient_study_series_and_hu_rescale(tmp_path):
    values = np.full((3, 2, 2), -1000, np.int16)
    nifti = _nifti(tmp_path, values, AXIAL)
    meta = SeriesMeta(uid_seed="x", patient_id="P7", study_description="liver", series_number=3)
    written = write_series(nifti, tmp_path / "a", meta)
    ds = pydicom.dcmread(written.files[1])
    assert (ds.Modality, ds.PatientID, ds.StudyDescription, ds.SeriesNumber) == ("CT", "P7", "liver", 3)
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == (written.study_uid, written.series_uid)
    assert ds.RescaleType == "HU" and float(ds.RescaleIntercept) == -1000.0
    assert pydicom.dcmread(written.files[0]).SOPInstanceUID != ds.SOPInstanceUID
    # the same seed gives the same UIDs: a re-upload replaces instead of duplicating
    again = write_series(nifti, tmp_path / "b", meta)
    assert (again.study_uid, again.series_uid) == (written.study_uid, written.series_uid)


def test_rescale_is_exact_for_integers_and_covers_floats():
    assert hu_rescale(np.array([-1024, 3071])) == (1.0, -1024.0)
    assert hu_rescale(np.array([5, 100])) == (1.0, 0.0)
    slope, intercept = hu_rescale(np.array([-0.5, 0.25, 2.0]))
    assert intercept == -0.5 and np.isclose(slope * 65535 + intercept, 2.0)


def test_derived_series_joins_the_source_study_with_provenance(tmp_path):
    """A volume computed from a series (here: its slices doubled, as super-resolution x2 gives) is a new
    series of the same study and frame, each slice naming its nearest source slice."""
    values = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    source = write_series(_nifti(tmp_path, values, AXIAL), tmp_path / "src", SeriesMeta(uid_seed="s", patient_id="P2"))
    headers = [pydicom.dcmread(f) for f in source.files]
    thin = sitk.Resample(_read_series(tmp_path / "src"), [6, 5, 8], sitk.Transform(), sitk.sitkLinear,
                         headers[0].ImagePositionPatient, (1.0, 1.0, 0.5), (1, 0, 0, 0, -1, 0, 0, 0, -1), 0.0,
                         sitk.sitkFloat32)

    derived = write_derived_series(thin, headers, tmp_path / "out", "ct_superres v1 {\"scale_factor\": 2}", "SR")
    assert derived.study_uid == source.study_uid and derived.series_uid != source.series_uid
    slices = [pydicom.dcmread(f) for f in derived.files]
    assert len(slices) == 8
    assert {s.FrameOfReferenceUID for s in slices} == {headers[0].FrameOfReferenceUID}
    assert slices[0].PatientID == "P2" and slices[0].DerivationDescription.startswith("ct_superres v1")
    # thin slices k = 0, 1 lie nearest source slice 0, then 2 -> 1 (0.5 mm steps)
    nearest = [s.SourceImageSequence[0].ReferencedSOPInstanceUID for s in slices]
    assert nearest[:3] == [headers[0].SOPInstanceUID, headers[0].SOPInstanceUID, headers[1].SOPInstanceUID]
    back = _read_series(tmp_path / "out")
    np.testing.assert_allclose(back.GetSpacing(), (1.0, 1.0, 0.5), atol=1e-5)
    np.testing.assert_allclose(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(thin), atol=float(slices[0].RescaleSlope))
    # the same result again: the same series, so a PACS replaces it
    again = write_derived_series(thin, headers, tmp_path / "again", "ct_superres v1 {\"scale_factor\": 2}", "SR")
    assert again.series_uid == derived.series_uid
