"""Generation app: CT restoration and synthesis models, declared as specs. All behaviour lives in ``lib/medlabel``.

Run: ``monailabel start_server --app apps/generation --studies demo-data/studies/liver-ct``
Restored images come back as files and are added to the studies as new images with their provenance.
"""

from medlabel.app import medlabel_app
from medlabel.kinds.generation.spec import (
    RESTORATION_TRAIN,
    Denoise,
    DiffusionNetwork,
    RestorationNetwork,
    RestorationSpec,
    SuperResolution,
    SynthesisSpec,
)
from medlabel.spec import TrainSpec

TRAIN = TrainSpec(max_epochs=20, iterations_per_epoch=20, learning_rate=2e-3, samples_per_volume=4, batch_size=4)

GenerationApp = medlabel_app(
    name="medlabel-generation",
    description="CT restoration (denoising, slice super-resolution) learnt from the studies themselves, and CT "
    "synthesis from liver masks",
    specs=[
        RestorationSpec(
            name="ct_denoise",
            description="Low-dose CT denoising: removes added Gaussian noise of 10-80 HU (std)",
            degradation=Denoise(min_noise_hu=10, max_noise_hu=80, default_noise_hu=40),
            roi_size=(32, 32, 32),
            network=RestorationNetwork(channels=(16, 32, 64)),
            train=RESTORATION_TRAIN,
        ),
        RestorationSpec(
            name="ct_superres",
            description="Through-plane CT super-resolution: slices 2x or 4x thinner",
            degradation=SuperResolution(factors=(2, 4), default_factor=2),
            roi_size=(32, 32, 32),
            network=RestorationNetwork(channels=(16, 32, 64)),
            train=RESTORATION_TRAIN,
        ),
        SynthesisSpec(
            name="liver_synth",
            description="CT generated from a liver/tumour mask (DDIM sampling; steps and seed are parameters)",
            labels={"liver": 1, "tumour": 2},
            spacing_mm=(2.0, 2.0, 2.0),
            roi_size=(32, 32),
            network=DiffusionNetwork(channels=(16, 32, 64)),
            default_steps=25,
            train=TRAIN,
        ),
    ],
)
