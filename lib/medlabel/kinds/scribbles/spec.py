"""The spec of a scribbles refinement: which segmentation model it refines and how the graph cut behaves."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from medlabel.spec import BaseSpec, ModelSpec


class ScribblesSpec(BaseSpec):
    """Refines a served segmentation model's prediction with the user's scribbles (ISeg + graph cut).

    ``prior`` is the very ``ModelSpec`` the app serves (pass the same object), so the refinement reads
    that model's serving weights and follows its new versions. Labels default to the prior's, which
    also fixes the scribble ids Slicer and MONAI Label use when no ``label_info`` is sent: background
    scribbles ``N + 1``, foreground scribbles ``N + 2`` for ``N`` labels.
    """

    kind: Literal["scribbles"] = "scribbles"
    prior: ModelSpec
    method: Literal["gmm", "histogram"] = "gmm"  # intensity likelihood fitted on the scribbles
    lamda: float = Field(1.0, ge=0.0)  # graph-cut smoothness (higher: smoother, and slower max-flow)
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the scribble likelihood against the model
    margin_mm: float = Field(20.0, gt=0.0)  # work box: the scribbles' bounding box grown by this
    context_mm: float = Field(24.0, ge=0.0)  # extra image the model sees around the work box
    overlap: float = Field(0.0, ge=0.0, lt=1.0)  # the prior's sliding-window overlap (0: fewest windows)
    cut_voxels: int = Field(300_000, ge=4096)  # larger boxes are cut on a coarser grid (latency)

    @model_validator(mode="before")
    @classmethod
    def _labels_from_prior(cls, data: Any) -> Any:
        if isinstance(data, dict) and "labels" not in data and data.get("prior") is not None:
            prior = data["prior"]
            data = {**data, "labels": dict(prior.labels if isinstance(prior, ModelSpec) else prior["labels"])}
        return data

    @model_validator(mode="after")
    def _labels_of_prior(self) -> ScribblesSpec:
        unknown = set(self.labels) - set(self.prior.labels)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not predicted by the prior model '{self.prior.name}'")
        return self

    @property
    def background_scribbles_id(self) -> int:
        return len(self.labels) + 1

    @property
    def foreground_scribbles_id(self) -> int:
        return len(self.labels) + 2
