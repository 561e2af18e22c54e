"""Synthetic lesions of the detection demo: inside the liver, away from real tumours, where their boxes say."""

import numpy as np

from medlabel.demo.detection import RADII_MM, TUMOUR, insert_lesions


def test_inserted_lesions_are_hypodense_spheres_inside_the_liver_at_their_boxes():
    image = np.full((48, 48, 48), -100, np.int16)  # fat around the liver
    labels = np.zeros(image.shape, np.uint8)
    labels[4:44, 4:44, 4:44] = 1
    image[labels == 1] = 120  # liver
    labels[30:40, 30:40, 30:40] = TUMOUR
    out, boxes = insert_lesions(image, labels, count=3, seed=0)

    assert boxes.shape == (3, 6) and out.dtype == image.dtype
    again, same = insert_lesions(image, labels, count=3, seed=0)
    assert np.array_equal(again, out) and np.array_equal(same, boxes)  # known places: seeded
    changed = out != image
    for box in boxes:
        lo, hi = box[:3], box[3:]
        size = hi - lo
        assert np.allclose(size, size[0]) and 2 * RADII_MM[0] <= size[0] <= 2 * RADII_MM[1]  # spheres
        centre = np.floor((lo + hi) / 2).astype(int)
        assert labels[tuple(centre)] == 1  # in the liver, not in the real tumour
        assert 30 < out[tuple(centre)] < 110  # tumour-like (69 HU with noise), darker than the liver
        a, b = np.floor(lo).astype(int) - 1, np.ceil(hi).astype(int) + 1
        assert not (labels[a[0]:b[0], a[1]:b[1], a[2]:b[2]] == TUMOUR).any()  # away from real tumours
    grown = np.zeros_like(changed)
    for box in boxes:
        a, b = np.floor(box[:3]).astype(int) - 1, np.ceil(box[3:]).astype(int) + 1
        grown[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = True
    assert changed.any() and not (changed & ~grown).any()  # nothing changed outside the boxes
