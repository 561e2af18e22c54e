"""Makes the SEG fixtures the way newer viewers write them, with highdicom 0.28 (pydicom 3).

medlabel's own environment must keep pydicom 2 (monailabel 0.8.5), whose highdicom cannot write the
LABELMAP kind OHIF 3.13 writes; so these files are made once in a separate venv and committed:

    python3 -m venv /tmp/hd28 && /tmp/hd28/bin/pip install highdicom==0.28.2 SimpleITK
    python -m medlabel.demo --out /tmp/demo   # and write its DICOM series (medlabel.dicom.series.write_studies)
    /tmp/hd28/bin/python tests/dicomweb/data/make_seg_fixtures.py /tmp/demo /tmp/dicom/lits117_subvolume_x1y1z0

The demo series' UIDs are derived from the image names, so the SEGs reference the series the tests
upload. Both segment the ground truth of ``lits117_subvolume_x1y1z0`` (liver 1, tumour 2):
- ``labelmap_seg.dcm``: SegmentationType LABELMAP, RLE Lossless, segments numbered liver 1, tumour 2;
- ``binary_seg.dcm``: BINARY, segments numbered the other way round (tumour 1, liver 2) and named, so a
  reader must map segments by name to get the label ids back.
"""

import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

NAME = "lits117_subvolume_x1y1z0"
demo, series_dir = Path(sys.argv[1]), Path(sys.argv[2])
out = Path(__file__).parent

slices = [pydicom.dcmread(p) for p in sorted(series_dir.glob("*.dcm"))]
normal = np.cross(*np.reshape(slices[0].ImageOrientationPatient, (2, 3)))
slices.sort(key=lambda d: float(np.dot(normal, d.ImagePositionPatient)))
truth = sitk.GetArrayFromImage(sitk.ReadImage(str(demo / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz")))
assert truth.shape == (len(slices), slices[0].Rows, slices[0].Columns) and set(np.unique(truth)) == {0, 1, 2}


def segment(number, name, prop):
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=name, segmented_property_category=codes.SCT.Organ,
        segmented_property_type=prop, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)


def write(kind, pixels, descriptions, syntax, file):
    seg = hd.seg.Segmentation(
        source_images=slices, pixel_array=pixels, segmentation_type=kind, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="fixture", manufacturer_model_name="highdicom 0.28", software_versions=hd.__version__,
        device_serial_number="0", transfer_syntax_uid=syntax)
    seg.save_as(out / file)
    print(file, seg.SOPClassUID, seg.SegmentationType, seg.NumberOfFrames, (out / file).stat().st_size)


write(hd.seg.SegmentationTypeValues.LABELMAP, truth.astype(np.uint8),
      [segment(1, "Liver", codes.SCT.Liver), segment(2, "Tumour", codes.SCT.Neoplasm)], RLELossless,
      "labelmap_seg.dcm")
swapped = np.select([truth == 2, truth == 1], [1, 2], 0).astype(np.uint8)
write(hd.seg.SegmentationTypeValues.BINARY, swapped,
      [segment(1, "Tumour", codes.SCT.Neoplasm), segment(2, "Liver", codes.SCT.Liver)], ExplicitVRLittleEndian,
      "binary_seg.dcm")
