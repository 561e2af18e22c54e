import numpy as np
import pytest

from medlabel.errors import BadRequest
from medlabel.kinds.scribbles.request import parse_scribbles

LABELS = {"liver": 1, "tumour": 2}
SLICER = [{"name": "liver", "id": 1}, {"name": "tumour", "id": 2}, {"name": "background_scribbles", "id": 3},
          {"name": "foreground_scribbles", "id": 4}]


def slicer_label():
    label = np.zeros((20, 20, 20), np.uint8)
    label[5:15, 5:15, 5:15] = 1
    label[8, 8, 8:12] = 4
    label[1, 1, 1:4] = 3
    return label


def test_slicer_layout_with_label_info():
    s = parse_scribbles(slicer_label(), {"label_info": SLICER, "selected_label_name": "liver", "roi": []}, LABELS)
    assert s.foreground.sum() == 4 and s.background.sum() == 3 and s.structure == "liver" and s.roi is None
    assert s.current.sum() == 1000 - 4


def test_ids_follow_label_info_when_segments_are_reordered():
    label = slicer_label()
    swapped = np.where(label == 3, 4, np.where(label == 4, 3, label))
    info = [{"name": "liver", "id": 1}, {"name": "foreground_scribbles", "id": 3}, {"name": "background_scribbles", "id": 4}]
    s = parse_scribbles(swapped, {"label_info": info}, LABELS)
    assert s.foreground.sum() == 4 and s.background.sum() == 3


def test_monai_label_default_ids_without_label_info():
    # N labels: background scribbles N + 1, foreground N + 2 (MONAI Label's scribbles infer tasks)
    s = parse_scribbles(slicer_label(), {}, LABELS)
    assert s.foreground.sum() == 4 and s.background.sum() == 3 and s.structure == "liver"


def test_roi_drops_scribbles_outside_it():
    s = parse_scribbles(slicer_label(), {"label_info": SLICER, "roi": [12, 5, 5, 15, 5, 15]}, LABELS)
    assert s.roi == (slice(5, 12), slice(5, 15), slice(5, 15)) and s.background.sum() == 0 and s.foreground.sum() == 4


@pytest.mark.parametrize("label, request_, message", [
    (np.ones((20, 20, 20), np.uint8), {"label_info": SLICER}, "no scribbles"),
    (slicer_label(), {"label_info": SLICER, "roi": [15, 19, 15, 19, 15, 19]}, "no scribbles inside the roi"),
    (slicer_label(), {"label_info": SLICER, "selected_label_name": "spleen"}, "selected_label_name"),
    (slicer_label(), {"label_info": "liver"}, "label_info must be"),
    (slicer_label(), {"label_info": [{"name": "background_scribbles", "id": 4}, {"name": "foreground_scribbles", "id": 4}]},
     "share the id"),
])
def test_unusable_requests_are_client_errors(label, request_, message):
    with pytest.raises(BadRequest, match=message):
        parse_scribbles(label, request_, LABELS)
