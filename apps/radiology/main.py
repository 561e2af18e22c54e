"""Radiology app: 3D CT and MR models, declared as specs. All behaviour lives in ``lib/medlabel``.

Run: ``monailabel start_server --app apps/radiology --studies demo-data/studies/liver-ct``
"""

from medlabel.app import medlabel_app
from medlabel.kinds.clicks.spec import ClickSpec
from medlabel.kinds.detection.spec import DetectionSpec
from medlabel.kinds.scribbles.spec import ScribblesSpec
from medlabel.spec import CTWindow, ModelSpec, NetworkSpec, TrainSpec, ZScore

LIVER_CT = ModelSpec(
    name="liver_ct",
    description="Liver and liver tumours on contrast CT",
    labels={"liver": 1, "tumour": 2},
    spacing_mm=(1.5, 1.5, 1.5),
    roi_size=(48, 48, 48),
    intensity=CTWindow(hu_min=-175, hu_max=250),
    network=NetworkSpec(arch="unet", channels=(16, 32, 64, 128), dropout=0.1),
    train=TrainSpec(max_epochs=40, learning_rate=3e-3, samples_per_volume=4, batch_size=2),
)
BRAIN_MR = ModelSpec(
    name="brain_mr",
    description="Brain (intracranial) mask on T1 MR",
    labels={"brain": 1},
    spacing_mm=(2.0, 2.0, 2.0),
    roi_size=(48, 48, 48),
    intensity=ZScore(),
    network=NetworkSpec(arch="unet", channels=(16, 32, 64, 128), dropout=0.1),
    train=TrainSpec(max_epochs=40, learning_rate=3e-3, samples_per_volume=4, batch_size=2),
)

RadiologyApp = medlabel_app(
    name="medlabel-radiology",
    description="3D CT and MR segmentation with continual learning and interactive refinement",
    specs=[
        LIVER_CT,
        BRAIN_MR,
        ScribblesSpec(name="liver_ct_scribbles", prior=LIVER_CT, description="Refine liver_ct with scribbles"),
        ScribblesSpec(name="brain_mr_scribbles", prior=BRAIN_MR, description="Refine brain_mr with scribbles"),
        ClickSpec(
            name="liver_clicks",
            description="Liver from foreground/background clicks on CT",
            labels={"liver": 1},
            spacing_mm=(2.0, 2.0, 2.0),
            roi_size=(64, 64, 64),
            intensity=CTWindow(hu_min=-175, hu_max=250),
            network=NetworkSpec(channels=(16, 32, 64, 128), dropout=0.0),
            train=TrainSpec(max_epochs=20, learning_rate=3e-3, samples_per_volume=2, batch_size=2),
        ),
        ClickSpec(
            name="brain_clicks",
            description="Brain from foreground/background clicks on T1 MR",
            labels={"brain": 1},
            spacing_mm=(3.0, 3.0, 3.0),
            roi_size=(64, 64, 64),
            intensity=ZScore(),
            network=NetworkSpec(channels=(16, 32, 64, 128), dropout=0.0),
            train=TrainSpec(max_epochs=20, learning_rate=3e-3, samples_per_volume=2, batch_size=2),
        ),
        DetectionSpec(
            name="liver_lesions",
            description="Liver lesions on CT as 3D boxes (RetinaNet); labels are boxes or tumour masks",
            labels={"lesion": 1},
            spacing_mm=(2.0, 2.0, 2.0),
            roi_size=(32, 32, 32),
            intensity=CTWindow(hu_min=-175, hu_max=250),
            head_levels=2,  # strides 4 and 8: a CPU training step about 4x faster than with stride 2
            anchor_mm=(8.0, 16.0),
            mask_label=2,
            train=TrainSpec(max_epochs=30, iterations_per_epoch=20, learning_rate=5e-3, samples_per_volume=1,
                            batch_size=2, max_minutes=4),
        ),
    ],
)
