"""A restored image with a DICOMweb datastore: a derived series of the same study in a real Orthanc."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
import pytest
import requests
import SimpleITK as sitk

pytestmark = pytest.mark.system

NAME = "lits117_subvolume_x1y1z0"


def series_instances(orthanc, series_uid: str) -> list[pydicom.Dataset]:
    """Every instance of one series as Orthanc stores it."""
    [found] = requests.post(f"{orthanc.url}/tools/lookup", data=series_uid, timeout=10).json()
    instances = requests.get(f"{orthanc.url}/series/{found['ID']}/instances", timeout=10).json()
    return [pydicom.dcmread(BytesIO(requests.get(f"{orthanc.url}/instances/{i['ID']}/file", timeout=10).content))
            for i in instances]


def test_restored_image_is_stored_as_a_derived_series_of_the_same_study(orthanc, start_server, slicer_client_class,
                                                                        demo_data, demo_dicom, tmp_path):
    source = demo_dicom[NAME]
    server = start_server("generation", orthanc.dicomweb_url, models="ct_denoise,ct_superres,liver_synth")
    client = slicer_client_class.MONAILabelClient(server.url, tmpdir=str(tmp_path), client_id="test")

    result, params = client.infer("ct_denoise", source.series_uid, {"noise_level_hu": 20})
    derived = params["derived_image"]
    assert derived["stored"] and derived["id"] != source.series_uid, derived
    assert derived["generated"]["source_image"] == source.series_uid

    # uploaded by STOW-RS: Orthanc lists the new series, in the source's study
    assert derived["id"] in orthanc.series_uids("CT")
    instances = series_instances(orthanc, derived["id"])
    source_sops = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in source.files}
    assert len(instances) == len(source.files)
    for ds in instances:
        assert ds.StudyInstanceUID == source.study_uid and ds.SeriesInstanceUID == derived["id"]
        assert "ct_denoise v0" in ds.DerivationDescription and '"noise_level_hu": 20' in ds.DerivationDescription
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in source_sops
        assert ds.ImageType[0] == "DERIVED"

    # the series reads back as the result, on the source's grid (16-bit storage: within a rescale step)
    folder = tmp_path / "derived"
    folder.mkdir()
    for i, ds in enumerate(instances):
        ds.save_as(str(folder / f"{i:04d}.dcm"))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    stored, answered = reader.Execute(), sitk.ReadImage(result)
    assert stored.GetSize() == answered.GetSize()
    assert np.allclose(stored.GetOrigin(), answered.GetOrigin(), atol=1e-3)
    slope = float(instances[0].RescaleSlope)
    assert np.abs(sitk.GetArrayFromImage(stored) - sitk.GetArrayFromImage(answered)).max() <= slope

    # the server lists it as an image of its datastore, with its provenance
    objects = client.datastore()["objects"]
    assert derived["id"] in objects
    assert objects[derived["id"]]["image"]["info"]["generated"]["model"] == "ct_denoise"

    # super-resolution: a derived series of the same study with twice the slices, half as far apart
    result, params = client.infer("ct_superres", source.series_uid, {"scale_factor": 2})
    thin = params["derived_image"]["id"]
    assert thin not in (source.series_uid, derived["id"]) and thin in orthanc.series_uids("CT")
    thin_instances = series_instances(orthanc, thin)
    assert len(thin_instances) == 2 * len(source.files)
    assert {ds.StudyInstanceUID for ds in thin_instances} == {source.study_uid}
    z = sorted(float(ds.ImagePositionPatient[2]) for ds in thin_instances)
    assert np.allclose(np.diff(z), sitk.ReadImage(result).GetSpacing()[2], atol=1e-3)
    assert all("ct_superres v0" in ds.DerivationDescription for ds in thin_instances)

    # a synthetic pair: the generated series, and its mask as a DICOM SEG on that series
    mask = demo_data / "groundtruth" / "liver-ct" / f"{NAME}.nii.gz"
    _, params = client.infer("liver_synth", source.series_uid, {"steps": 2, "seed": 3}, label_in=str(mask))
    synthetic = params["derived_image"]["id"]
    assert synthetic not in (source.series_uid, derived["id"]) and synthetic in orthanc.series_uids("CT")
    assert {ds.StudyInstanceUID for ds in series_instances(orthanc, synthetic)} == {source.study_uid}
    [seg] = [ds for s in orthanc.series_uids("SEG") for ds in series_instances(orthanc, s)]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == synthetic
