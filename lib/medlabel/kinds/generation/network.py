"""Builds the generation networks from their specs; one builder each for training and inference."""

from __future__ import annotations

import torch
from monai.networks.nets import UNet

from medlabel.kinds.generation.spec import RestorationSpec


class ResidualRestorer(torch.nn.Module):
    """``input[:, :1] + head(unet(input))``: the network learns what the baseline estimate misses.

    The head starts at zero, so an untrained model (version 0) returns the baseline itself (the noisy
    image, or its cubic-spline slice interpolation) and the gate promotes only what beats that baseline.
    The UNet sees the image centred on the window and multiplied by ``scale`` and answers in those units:
    in plain window units the corrections (tens of HU in a 2000 HU window) are a few hundredths, and the
    UNet, without normalisation, learnt nothing from them in the first hundred steps (bench notes in
    docs/generation.md).
    """

    def __init__(self, channels: tuple[int, ...], scale: float = 1.0, in_channels: int = 2, features: int = 8):
        super().__init__()
        self.scale = scale
        self.body = UNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=features,
            channels=channels,
            strides=(2,) * (len(channels) - 1),
            num_res_units=1,
            norm=None,
            act="PRELU",
        )
        self.head = torch.nn.Conv3d(features, 1, kernel_size=1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x[:, :1]
        z = torch.cat([(image - 0.5) * self.scale, x[:, 1:]], 1)
        return image + self.head(self.body(z)) / self.scale


def build_restoration_network(spec: RestorationSpec) -> torch.nn.Module:
    return ResidualRestorer(spec.network.channels, scale=spec.window.width / spec.network.unit_hu)
