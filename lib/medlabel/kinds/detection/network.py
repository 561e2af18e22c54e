"""RetinaNet built from a detection spec, on MONAI's detection stack without torchvision.

MONAI's ``resnet_fpn_feature_extractor`` wraps its backbone in torchvision's ``IntermediateLayerGetter``;
torchvision cannot be installed here, so the feature extractor below runs its own small residual stages
and feeds them to MONAI's ``FeaturePyramidNetwork``. Everything else (RetinaNet heads, anchors, box coder,
ATSS matcher, hard negative sampler, box selection with NMS) is ``monai.apps.detection``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.networks.retinanet_network import RetinaNet
from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork

from medlabel.kinds.detection.spec import DetectionSpec

FEATURE_STRIDES = (2, 4, 8)  # voxels of the model grid per feature voxel at each pyramid level


class ResidualFPN(torch.nn.Module):
    """A strided stem and residual stages (strides 2, 4, 8) with an FPN on the coarsest ``levels`` of them;
    ``out_channels`` per level."""

    def __init__(self, widths: tuple[int, ...], out_channels: int, levels: int = 3):
        super().__init__()
        self.stem = Convolution(3, 1, widths[0], strides=2, kernel_size=3, norm="instance")
        stages, previous = [], widths[0]
        for i, width in enumerate(widths):
            stages.append(ResidualUnit(3, previous, width, strides=1 if i == 0 else 2, subunits=1, norm="instance"))
            previous = width
        self.stages = torch.nn.ModuleList(stages)
        self.first_level = len(widths) - levels
        self.fpn = FeaturePyramidNetwork(spatial_dims=3, in_channels_list=list(widths[self.first_level:]),
                                         out_channels=out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features, x = OrderedDict(), self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= self.first_level:
                features[str(i)] = x
        return self.fpn(features)


def head_strides(spec: DetectionSpec) -> tuple[int, ...]:
    """Strides (model voxels per feature voxel) of the pyramid levels the heads run on."""
    return FEATURE_STRIDES[len(FEATURE_STRIDES) - spec.head_levels:]


def anchor_shapes_voxels(spec: DetectionSpec) -> tuple[tuple[float, float, float], ...]:
    """Base anchor shapes in model voxels for the finest level, from the spec's sizes in mm."""
    return tuple(tuple(mm / s for s in spec.spacing_mm) for mm in spec.anchor_mm)


def build_network(spec: DetectionSpec) -> RetinaNet:
    """The trainable part (its state dict is what the model store versions)."""
    return RetinaNet(
        spatial_dims=3,
        num_classes=len(spec.labels),
        num_anchors=len(spec.anchor_mm),
        feature_extractor=ResidualFPN(spec.widths, spec.fpn_channels, spec.head_levels),
        size_divisible=FEATURE_STRIDES[-1],
    )


class AtssRetinaNetDetector(RetinaNetDetector):
    """MONAI's detector with its ATSS matcher called directly.

    The stock ``compute_anchor_matched_idxs`` first asks ``isinstance(matcher, torchvision Matcher)``,
    which raises without torchvision even when the ATSS matcher is set; the ATSS branch is the same call.
    """

    def compute_anchor_matched_idxs(self, anchors, targets, num_anchor_locs_per_level):
        matched = []
        for anchors_per_image, targets_per_image in zip(anchors, targets):
            boxes = targets_per_image[self.target_box_key]
            if boxes.numel() == 0:  # an image without lesions: every anchor is background
                matched.append(torch.full((anchors_per_image.size(0),), -1, dtype=torch.int64,
                                          device=anchors_per_image.device))
                continue
            _, idxs = self.proposal_matcher(
                boxes.to(anchors_per_image.device), anchors_per_image, num_anchor_locs_per_level, self.num_anchors_per_loc
            )
            matched.append(idxs)
        return matched


def build_detector(spec: DetectionSpec, network: RetinaNet, *, score_threshold: float | None = None) -> RetinaNetDetector:
    """RetinaNetDetector around ``network``: anchors, ATSS matching and hard negatives for training; sliding
    windows of ``roi_size``, score threshold and NMS for inference. Boxes are MONAI voxel boxes."""
    strides = head_strides(spec)
    anchors = AnchorGeneratorWithAnchorShape(
        feature_map_scales=tuple(s // strides[0] for s in strides),
        base_anchor_shapes=anchor_shapes_voxels(spec),
    )
    detector = AtssRetinaNetDetector(network=network, anchor_generator=anchors)
    detector.set_target_keys(box_key="box", label_key="box_label")
    detector.set_atss_matcher(num_candidates=4, center_in_gt=False)
    detector.set_hard_negative_sampler(batch_size_per_image=64, positive_fraction=0.3, pool_size=20, min_neg=16)
    detector.set_box_selector_parameters(
        score_thresh=spec.score_threshold if score_threshold is None else score_threshold,
        topk_candidates_per_level=1000,
        nms_thresh=spec.nms_iou,
        detections_per_img=spec.max_detections,
    )
    detector.set_sliding_window_inferer(roi_size=spec.roi_size, overlap=0.25, sw_batch_size=1, mode="constant")
    return detector
