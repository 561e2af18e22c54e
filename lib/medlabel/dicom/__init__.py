"""DICOM: CT series written from NIfTI, DICOM SEG both ways, and a local Orthanc for DICOMweb."""
