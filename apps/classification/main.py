"""Classification app: image- and volume-level classes with Grad-CAM maps, declared as specs.

Run on the demo tiles (one model per studies folder, since every image has one ``final`` label):
``monailabel start_server --app apps/classification --studies demo-data/studies/liver-tiles --conf models liver_tiles``
"""

from medlabel.app import medlabel_app
from medlabel.kinds.classification.spec import ClassificationSpec, ClassifierNetwork
from medlabel.spec import CTWindow, TrainSpec, ZScore

LIVER_WINDOW = CTWindow(hu_min=-175, hu_max=250)
RESNET_2D = ClassifierNetwork(arch="resnet", widths=(16, 32, 64, 128), dropout=0.2)
RESNET_3D = ClassifierNetwork(arch="resnet", widths=(8, 16, 32, 64), dropout=0.2)  # smaller: 3D costs more

ClassificationApp = medlabel_app(
    name="medlabel-classification",
    description="Image- and volume-level classification with explanation maps and continual learning",
    specs=[
        ClassificationSpec(
            name="liver_tiles",
            description="Liver and liver tumour present in a 2D CT tile",
            classes=("liver", "tumour"),
            multi_label=True,
            dims=2,
            input_size=(32, 32),
            intensity=LIVER_WINDOW,
            network=RESNET_2D,
            train=TrainSpec(max_epochs=20, iterations_per_epoch=20, batch_size=16, learning_rate=2e-3),
        ),
        ClassificationSpec(
            name="brain_tiles",
            description="Brain or not in a 2D T1 MR tile",
            classes=("brain", "no_brain"),
            dims=2,
            input_size=(48, 48),
            intensity=ZScore(),
            network=RESNET_2D,
            train=TrainSpec(max_epochs=20, iterations_per_epoch=20, batch_size=16, learning_rate=2e-3),
        ),
        ClassificationSpec(
            name="tumour_volume",
            description="Liver tumour present in a 3D CT volume",
            classes=("tumour",),
            multi_label=True,
            dims=3,
            input_size=(48, 48, 48),
            intensity=LIVER_WINDOW,
            network=RESNET_3D,
            train=TrainSpec(max_epochs=20, iterations_per_epoch=10, batch_size=4, learning_rate=1e-3),
        ),
        ClassificationSpec(
            name="liver_cubes",
            description="Liver and liver tumour present in a 3D CT cube (demo set liver-cubes)",
            classes=("liver", "tumour"),
            multi_label=True,
            dims=3,
            input_size=(32, 32, 32),  # cubes of 24^3 voxels, upsampled: at 24^3 and 2e-3 it did not learn
            intensity=LIVER_WINDOW,
            network=RESNET_3D,
            train=TrainSpec(max_epochs=20, iterations_per_epoch=10, batch_size=8, learning_rate=1e-3),
        ),
        ClassificationSpec(
            name="body_part",
            description="Body part of a whole axial slice, CT or MR (demo set body-part)",
            classes=("head", "trunk"),
            dims=2,
            input_size=(64, 64),
            intensity=ZScore(),
            network=RESNET_2D,
            train=TrainSpec(max_epochs=20, iterations_per_epoch=10, batch_size=16, learning_rate=2e-3),
        ),
    ],
)
