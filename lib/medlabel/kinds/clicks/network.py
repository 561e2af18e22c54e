"""Builds the click network: a small 3D UNet over the image and its two click channels."""

import torch
from monai.networks.nets import UNet

from medlabel.kinds.clicks.spec import ClickSpec

IN_CHANNELS = 3  # image, foreground clicks, background clicks (DeepGrow's layout)


def build_network(spec: ClickSpec) -> torch.nn.Module:
    """Two logits (background, structure) per voxel."""
    levels = len(spec.network.channels)
    return UNet(
        spatial_dims=3,
        in_channels=IN_CHANNELS,
        out_channels=2,
        channels=spec.network.channels,
        strides=(2,) * (levels - 1),
        num_res_units=1,
        norm="instance",
        dropout=spec.network.dropout,
    )
