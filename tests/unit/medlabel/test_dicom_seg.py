"""DICOM SEG both ways on the demo CT series; the fixtures were written by highdicom 0.28 (see data/)."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medlabel.dicom.seg import SegError, read_seg, referenced_series, write_seg
from medlabel.errors import BadRequest

NAME = "lits117_subvolume_x1y1z0"
FIXTURES = Path(__file__).resolve().parents[2] / "dicomweb" / "data"
LABEL_IDS = {"liver": 1, "tumour": 2}


@pytest.fixture(scope="module")
def case(demo_data, demo_dicom):
    """(CT series grid, its slice datasets, the ground-truth label image) of one demo sub-volume."""
    files = demo_dicom[NAME].files
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(files[0].parent)))
    truth = sitk.ReadImage(str(demo_data / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz"))
    return reader.Execute(), [pydicom.dcmread(f, stop_before_pixels=True) for f in files], truth


def test_written_seg_references_its_series_and_reads_back_exact(case, demo_dicom, tmp_path):
    grid, source, truth = case
    seg = write_seg(truth, source, {1: "liver", 2: "tumour"}, creator="annotator")
    seg.save_as(tmp_path / "seg.dcm")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert referenced_series(seg) == demo_dicom[NAME].series_uid
    assert seg.StudyInstanceUID == demo_dicom[NAME].study_uid
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg.SegmentSequence] == [(1, "liver"), (2, "tumour")]
    np.testing.assert_array_equal(read_seg(seg, grid), sitk.GetArrayFromImage(truth))


def test_written_segments_carry_display_colours(case):
    """Without RecommendedDisplayCIELabValue each viewer picks its own colour for a segment."""
    from pydicom_seg.template import rgb_to_cielab

    _, source, truth = case
    seg = write_seg(truth, source, {1: "liver", 2: "tumour"})
    lab = [tuple(s.RecommendedDisplayCIELabValue) for s in seg.SegmentSequence]
    assert lab == [tuple(rgb_to_cielab((221, 130, 101))), tuple(rgb_to_cielab((144, 238, 144)))]
    assert lab[0] != lab[1]


def test_labelmap_kind_that_ohif_313_writes_is_read(case):
    grid, _, truth = case
    seg = pydicom.dcmread(FIXTURES / "labelmap_seg.dcm")
    assert seg.SegmentationType == "LABELMAP" and seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"
    np.testing.assert_array_equal(read_seg(seg, grid, LABEL_IDS), sitk.GetArrayFromImage(truth))


def test_binary_segments_map_to_label_ids_by_name(case):
    grid, _, truth = case
    seg = pydicom.dcmread(FIXTURES / "binary_seg.dcm")  # segment 1 is the tumour, 2 the liver
    expected = sitk.GetArrayFromImage(truth)
    np.testing.assert_array_equal(read_seg(seg, grid, LABEL_IDS), expected)
    by_number = read_seg(seg, grid)  # names unknown: segment numbers are the ids
    np.testing.assert_array_equal(by_number, np.select([expected == 1, expected == 2], [2, 1], 0))


def test_malformed_segs_are_rejected_with_a_reason(case, demo_dicom):
    grid, source, truth = case
    with pytest.raises(SegError, match="not a DICOM SEG"):
        read_seg(pydicom.dcmread(demo_dicom[NAME].files[0]), grid)

    shifted = pydicom.dcmread(FIXTURES / "labelmap_seg.dcm")
    position = shifted.PerFrameFunctionalGroupsSequence[3].PlanePositionSequence[0]
    position.ImagePositionPatient = [float(v) + 0.5 for v in position.ImagePositionPatient]
    with pytest.raises(SegError, match="frame 4 .* does not lie on a slice"):
        read_seg(shifted, grid)

    truncated = write_seg(truth, source, {})
    truncated.PixelData = truncated.PixelData[:100]
    with pytest.raises(SegError, match="pixel data"):
        read_seg(truncated, grid)

    other = sitk.Image(grid)
    other.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))
    with pytest.raises(SegError, match="not on this image's grid"):
        read_seg(pydicom.dcmread(FIXTURES / "binary_seg.dcm"), other)

    with pytest.raises(BadRequest, match="empty"):
        write_seg(truth * 0, source, {})
