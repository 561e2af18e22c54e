"""The real-data classification sets: 3D LiTS cubes and body part with the real DICOM images held apart."""

import json

import nibabel as nib
import numpy as np
import pydicom

from medlabel.demo.classification import dicom_pixels, real_dicom


def truth(demo_data, name: str) -> dict:
    return json.loads((demo_data / "groundtruth" / name / "labels.json").read_text())


def test_liver_cubes_are_volumes_with_both_outcomes_on_each_side_of_a_disjoint_split(demo_data):
    labels = truth(demo_data, "liver-cubes")
    studies = sorted((demo_data / "studies" / "liver-cubes").glob("*.nii.gz"))
    assert len(studies) == len(labels) == 125
    assert not list((demo_data / "studies" / "liver-cubes").glob("*.json"))  # labels stay in groundtruth/
    assert nib.load(studies[0]).shape == (24, 24, 24)
    for split in ("train", "heldout"):
        for cls in ("liver", "tumour"):
            flags = [cls in t["classes"] for t in labels.values() if t["split"] == split]
            assert 0.2 < np.mean(flags) < 0.8, (split, cls)
    slabs = {split: {int(i.split("_k")[1]) for i, t in labels.items() if t["split"] == split} for split in ("train", "heldout")}
    assert not slabs["train"] & slabs["heldout"]


def test_body_part_keeps_the_real_dicom_slices_out_of_training(demo_data):
    labels = truth(demo_data, "body-part")
    real = {i: t["classes"] for i, t in labels.items() if t["split"] == "real"}
    assert real == {"dicom_CT_small": ["trunk"], "dicom_J2K_pixelrep_mismatch": ["head"], "dicom_693_J2KI": ["head"],
                    "dicom_RG1_UNCI": ["trunk"], "dicom_MR-SIEMENS-DICOM-WithOverlays": ["trunk"]}
    train = [t["classes"][0] for t in labels.values() if t["split"] == "train"]
    assert train.count("head") >= 10 and train.count("trunk") >= 10
    image = nib.load(demo_data / "studies" / "body-part" / "dicom_CT_small.nii.gz")
    spacing = float(pydicom.dcmread(real_dicom("CT_small.dcm")).PixelSpacing[0])
    assert image.shape == (128, 128, 1) and np.allclose(image.header.get_zooms()[:2], spacing, atol=1e-4)
    radiograph = nib.load(demo_data / "studies" / "body-part" / "dicom_RG1_UNCI.nii.gz")
    assert radiograph.shape == (1841 // 4, 1955 // 4, 1)  # (columns, rows), stored at a quarter


def test_signed_jpeg2000_head_ct_decodes_to_hounsfield_units():
    """pydicom 2.4.5 overflows on this file; the fallback must give air, brain and bone their HU."""
    hu = dicom_pixels(real_dicom("693_J2KI.dcm"))
    assert hu.shape == (512, 512)
    centre = hu[206:306, 206:306]
    assert 10 < np.median(centre) < 60  # brain parenchyma
    assert hu.max() > 1000 and (hu < -900).mean() > 0.2  # skull, air around the head


def test_monochrome1_radiograph_is_inverted_so_that_bone_is_bright():
    """RG1 is a PA chest radiograph stored MONOCHROME1 (dense = low values); read, the spine must outshine the lungs."""
    chest = dicom_pixels(real_dicom("RG1_UNCI.dcm"), downsample=4)  # (x, y)
    assert chest.shape == (1841 // 4, 1955 // 4)
    x, y = chest.shape
    spine = chest[x // 2 - 10:x // 2 + 10, y // 3:2 * y // 3]
    lungs = np.concatenate([chest[x // 4 - 20:x // 4 + 20, y // 3:y // 2], chest[3 * x // 4 - 20:3 * x // 4 + 20, y // 3:y // 2]])
    assert np.median(spine) > np.median(lungs) + 0.1 * (chest.max() - chest.min())


def test_3d_cube_gets_probabilities_and_a_map_on_its_own_grid(demo_data, tmp_path):
    import SimpleITK as sitk

    from medlabel.continual.store import ModelStore
    from medlabel.kinds.classification.infer import ClassificationInfer
    from medlabel.kinds.classification.predictor import ClassificationPredictor
    from medlabel.kinds.classification.spec import ClassificationSpec, ClassifierNetwork
    from medlabel.spec import CTWindow

    spec = ClassificationSpec(name="liver_cubes", classes=("liver", "tumour"), multi_label=True, dims=3,
                              input_size=(32, 32, 32), intensity=CTWindow(), network=ClassifierNetwork(widths=(8, 16, 32, 64)))
    cube = next((demo_data / "studies" / "liver-cubes").glob("*.nii.gz"))
    infer = ClassificationInfer(ClassificationPredictor(ModelStore(tmp_path, spec)), "cpu")
    result, params = infer({"image": str(cube), "result_extension": ".nii.gz"})
    out, ref = sitk.ReadImage(result), sitk.ReadImage(str(cube))
    assert out.GetSize() == ref.GetSize() == (24, 24, 24)
    assert np.allclose(out.GetOrigin(), ref.GetOrigin()) and np.allclose(out.GetDirection(), ref.GetDirection())
    assert set(params["classes"]) == {"liver", "tumour"}
