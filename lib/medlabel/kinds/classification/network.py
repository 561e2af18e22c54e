"""One builder for the classifier used in training and inference: a MONAI backbone and a small head.

Every network is ``backbone`` (image -> embedding vector) then ``head`` (dropout, linear). The split
gives the core-set strategy its embeddings, Grad-CAM its target layer, and transfer learning its two
learning rates, the same way for every architecture.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from monai.networks.nets import DenseNet121, ResNet, ViT
from torch import nn

from medlabel.kinds.classification.spec import ClassificationSpec

logger = logging.getLogger(__name__)


class _MeanTokens(nn.Module):
    """ViT without its classification token: the mean of the last layer's patch tokens."""

    def __init__(self, vit: ViT):
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.vit(x)
        return tokens.mean(1)


class Classifier(nn.Module):
    """``backbone`` -> (B, F) embedding, ``head`` -> (B, C) logits."""

    def __init__(self, backbone: nn.Module, features: int, num_classes: int, dropout: float, target_layer: str | None):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))
        self.target_layer = target_layer  # the last convolutional feature map (Grad-CAM); None for a ViT

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_network(spec: ClassificationSpec, pretrained: bool = True) -> Classifier:
    """The spec's classifier; with ``pretrained`` and a checkpoint in the spec, its weights are loaded."""
    n = spec.network
    if n.arch == "resnet":
        backbone = ResNet("basic", list(n.layers), list(n.widths), spatial_dims=spec.dims, n_input_channels=1,
                          conv1_t_size=3, conv1_t_stride=1, no_max_pool=True, feed_forward=False)
        net = Classifier(backbone, n.widths[-1], spec.num_classes, n.dropout, "backbone.layer4")
    elif n.arch == "densenet121":
        dense = DenseNet121(spatial_dims=spec.dims, in_channels=1, out_channels=spec.num_classes)
        pool = nn.AdaptiveAvgPool2d(1) if spec.dims == 2 else nn.AdaptiveAvgPool3d(1)
        backbone = nn.Sequential(dense.features, nn.ReLU(), pool, nn.Flatten(1))
        net = Classifier(backbone, dense.class_layers.out.in_features, spec.num_classes, n.dropout, "backbone.1")
    else:
        vit = ViT(in_channels=1, img_size=spec.input_size, patch_size=n.vit_patch, hidden_size=n.vit_hidden,
                  mlp_dim=4 * n.vit_hidden, num_layers=n.vit_layers, num_heads=n.vit_heads, proj_type="conv",
                  classification=False, dropout_rate=n.dropout, spatial_dims=spec.dims)
        net = Classifier(_MeanTokens(vit), n.vit_hidden, spec.num_classes, n.dropout, None)
    if pretrained and n.pretrained is not None:
        load_pretrained(net, n.pretrained)
    return net


def load_pretrained(net: Classifier, path: Path) -> list[str]:
    """Loads every tensor of a user's checkpoint that fits ``net``; returns the names loaded.

    Accepts a plain state dict or one under ``model``/``state_dict``, from this classifier or from the
    bare MONAI network (keys then get the ``backbone.`` prefix). Tensors whose shapes differ (a head
    for other classes) are left as initialised, so a checkpoint trained on other classes transfers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint {path} does not exist (checkpoints are never downloaded)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(saved, dict) and isinstance(saved.get(key), dict):
            saved = saved[key]
    own = net.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in saved.items():
        key = key.removeprefix("module.")
        for name in (key, f"backbone.{key}"):
            if name in own and own[name].shape == value.shape:
                loaded[name] = value
                break
    if not loaded:
        raise ValueError(f"no tensor of {path} fits the '{type(net.backbone).__name__}' network of this spec")
    net.load_state_dict(loaded, strict=False)
    logger.info(f"loaded {len(loaded)}/{len(own)} tensors from {path}")
    return sorted(loaded)


def parameter_groups(net: nn.Module, spec: ClassificationSpec, lr: float) -> list[dict]:
    """Two learning rates when fine-tuning a checkpoint: early layers (the backbone) slower than the head."""
    if spec.network.pretrained is None:
        return [{"params": list(net.parameters()), "lr": lr}]
    return [
        {"params": list(net.backbone.parameters()), "lr": lr * spec.network.pretrained_lr_factor},
        {"params": list(net.head.parameters()), "lr": lr},
    ]


def dropout_modules(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.Dropout) and m.p > 0]
