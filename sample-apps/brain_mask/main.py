"""A minimal app written with medlabel: one structure of your own naming on your own MR images.

    monailabel start_server --app sample-apps/brain_mask --studies demo-data/studies/brain-mr --host 127.0.0.1

A new model of an existing kind is a spec: name it, list its labels, say at which spacing and patch size
the network should see the images and how to normalise intensities.
"""

from medlabel.app import medlabel_app
from medlabel.spec import ModelSpec, NetworkSpec, ZScore

BrainMaskApp = medlabel_app(
    name="brain-mask",
    description="Brain mask on T1 MR, learned from your own labels",
    specs=[
        ModelSpec(
            name="brain",
            labels={"brain": 1},
            spacing_mm=(2.0, 2.0, 2.0),
            roi_size=(48, 48, 48),
            intensity=ZScore(),
            network=NetworkSpec(arch="segresnet", channels=(8, 16, 32)),
        )
    ],
)
