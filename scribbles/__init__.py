"""Interactive scribble refinement on numpy arrays (likelihoods, ISeg unary, graph cut).

A torch-free, numpy-2-compatible replacement for the max-flow part of MONAI Label's
scribbles, whose `numpymaxflow` dependency does not work with numpy 2; graph cuts
use PyMaxflow (`import maxflow`) instead.
"""

from scribbles.errors import ScribbleError
from scribbles.graphcut import estimate_sigma, graph_cut, neighbour_offsets
from scribbles.likelihood import gmm_likelihood, histogram_likelihood
from scribbles.locality import keep_local_changes, new_strokes
from scribbles.refine import (
    SCRIBBLES_BG_LABEL,
    SCRIBBLES_FG_LABEL,
    refine,
    scribble_roi,
    scribbles_from_label,
)
from scribbles.unary import make_iseg_unary

__all__ = [
    "SCRIBBLES_BG_LABEL",
    "SCRIBBLES_FG_LABEL",
    "ScribbleError",
    "estimate_sigma",
    "gmm_likelihood",
    "graph_cut",
    "histogram_likelihood",
    "keep_local_changes",
    "make_iseg_unary",
    "neighbour_offsets",
    "new_strokes",
    "refine",
    "scribble_roi",
    "scribbles_from_label",
]
