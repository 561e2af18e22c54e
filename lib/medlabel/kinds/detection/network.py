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
    """A strided stem and residual stages (strides 2, 4, 8) with an FPN; ``out_channels`` per level, the
    coarsest ``levels`` of them returned for the RetinaNet heads.

    With ``seg=True`` (Retina U-Net, Jaeger et al. 2018) the FPN spans every stage and a 1x1x1 convolution
    on its finest (stride 2) level predicts a lesion mask, kept in ``seg_logits`` after each forward for the
    auxiliary segmentation loss: the detection losses alone reach the backbone through a few sampled
    anchors, the mask gives it a dense gradient at every voxel, which a detector learning from ten small
    volumes needs.
    """

    def __init__(self, widths: tuple[int, ...], out_channels: int, levels: int = 3, seg: bool = False):
        super().__init__()
        self.stem = Convolution(3, 1, widths[0], strides=2, kernel_size=3, norm="instance")
        stages, previous = [], widths[0]
        for i, width in enumerate(widths):
            stages.append(ResidualUnit(3, previous, width, strides=1 if i == 0 else 2, subunits=1, norm="instance"))
            previous = width
        self.stages = torch.nn.ModuleList(stages)
        self.levels = levels
        self.first_level = 0 if seg else len(widths) - levels
        self.fpn = FeaturePyramidNetwork(spatial_dims=3, in_channels_list=list(widths[self.first_level:]),
                                         out_channels=out_channels)
        self.seg = torch.nn.Conv3d(out_channels, 1, kernel_size=1) if seg else None
        self.seg_logits: torch.Tensor | None = None
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features, x = OrderedDict(), self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= self.first_level:
                features[str(i)] = x
        maps = self.fpn(features)
        if self.seg is not None:
            self.seg_logits = self.seg(next(iter(maps.values())))
        return OrderedDict(list(maps.items())[-self.levels:])


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
        feature_extractor=ResidualFPN(spec.widths, spec.fpn_channels, spec.head_levels, seg=spec.seg_weight > 0),
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


class NormalisedFocalLoss(torch.nn.Module):
    """RetinaNet's sigmoid focal loss over every anchor, summed and divided by the number of positive anchors
    (MONAI's ``FocalLoss`` averages over all anchors, which makes the few positives' share vanish)."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = p * target + (1 - p) * (1 - target)
        alpha_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        return (alpha_t * (1 - p_t) ** self.gamma * ce).sum() / target.sum().clamp(min=1.0)


def box_masks(boxes: list[torch.Tensor], shape: tuple[int, ...], stride: int) -> torch.Tensor:
    """(B, 1, *shape) masks of the ellipsoids inscribed in each image's voxel boxes, on a grid ``stride`` times
    coarser than the boxes' (the auxiliary segmentation target; lesions are round, their boxes are not)."""
    grid = torch.stack(torch.meshgrid(*[(torch.arange(n) + 0.5) * stride for n in shape], indexing="ij"))
    masks = torch.zeros((len(boxes), 1, *shape))
    for b, image_boxes in enumerate(boxes):
        for box in image_boxes.detach().cpu().float():
            centre, half = (box[:3] + box[3:]) / 2, ((box[3:] - box[:3]) / 2).clamp(min=stride / 2)
            inside = (((grid - centre[:, None, None, None]) / half[:, None, None, None]) ** 2).sum(0) <= 1
            masks[b, 0][inside] = 1.0
    return masks


def detection_loss(spec: DetectionSpec, detector: RetinaNetDetector, images: list[torch.Tensor],
                   targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """The detector's classification and box-regression losses, plus ``seg_weight`` times Dice + BCE of the
    Retina U-Net mask against the boxes' ellipsoids where the spec asks for it (training and the bench
    alike)."""
    losses = detector(images, targets)
    loss = losses["classification"] + losses["box_regression"]
    extractor = detector.network.feature_extractor
    if spec.seg_weight > 0 and extractor.seg_logits is not None:
        logits = extractor.seg_logits.float()
        stride = images[0].shape[-1] // logits.shape[-1]
        truth = box_masks([t["box"] for t in targets], tuple(logits.shape[2:]), stride).to(logits.device)
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * truth).sum() + 1) / (p.sum() + truth.sum() + 1)
        loss = loss + spec.seg_weight * (dice + torch.nn.functional.binary_cross_entropy_with_logits(logits, truth))
    return loss


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
    if spec.cls_loss == "focal":
        detector.set_cls_loss(NormalisedFocalLoss())
    else:
        detector.set_hard_negative_sampler(batch_size_per_image=64, positive_fraction=0.3, pool_size=20, min_neg=16)
    detector.set_box_selector_parameters(
        score_thresh=spec.score_threshold if score_threshold is None else score_threshold,
        topk_candidates_per_level=1000,
        nms_thresh=spec.nms_iou,
        detections_per_img=spec.max_detections,
    )
    detector.set_sliding_window_inferer(roi_size=spec.roi_size, overlap=0.25, sw_batch_size=1, mode="constant")
    return detector
