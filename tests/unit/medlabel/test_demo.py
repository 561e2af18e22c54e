import numpy as np

from medlabel.demo.build import octants
from medlabel.demo.sources import lits_117


def test_real_ct_reads_in_hu_with_both_labels():
    src = lits_117()
    assert src.image.shape == (128, 128, 128) and src.image.min() < -900 and src.image.max() > 1000
    assert set(np.unique(src.labels)) == {0, 1, 2}


def test_octants_are_disjoint_and_tile_the_volume():
    src = lits_117()
    total, origins = 0, set()
    for _suffix, image, labels, affine in octants(src):
        total += image.size
        origins.add(tuple(affine[:3, 3]))
        assert image.shape == labels.shape
    assert total == src.image.size and len(origins) == 8
