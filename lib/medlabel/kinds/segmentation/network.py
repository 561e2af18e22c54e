"""Builds the segmentation network from its spec; the one builder used by training and inference."""

import torch
from monai.networks.nets import DynUNet, SegResNet, UNet

from medlabel.spec import ModelSpec


def build_network(spec: ModelSpec) -> torch.nn.Module:
    """A 3D MONAI network with 1 input channel and ``spec.num_classes`` output logits.

    ``channels`` gives the width of each resolution level; SegResNet always doubles its width per level,
    so it takes the first width and the number of levels from it.
    """
    net, out = spec.network, spec.num_classes
    levels = len(net.channels)
    if net.arch == "unet":
        return UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=out,
            channels=net.channels,
            strides=(2,) * (levels - 1),
            num_res_units=1,
            norm="instance",
            dropout=net.dropout,
        )
    if net.arch == "segresnet":
        return SegResNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=out,
            init_filters=net.channels[0],
            blocks_down=(1, 2, 2, 4, 4)[:levels],
            blocks_up=(1,) * (levels - 1),
            dropout_prob=net.dropout,
        )
    return DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=out,
        kernel_size=[3] * levels,
        strides=[1] + [2] * (levels - 1),
        upsample_kernel_size=[2] * (levels - 1),
        filters=list(net.channels),
        dropout=net.dropout,
        norm_name="instance",
        res_block=True,
    )


def dropout_modules(network: torch.nn.Module) -> list[torch.nn.Module]:
    """The dropout layers, switched to train mode for MC-dropout sampling."""
    return [m for m in network.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout3d))]
