import pytest

from medlabel.errors import BadRequest
from medlabel.server.guard import check_image_id


@pytest.mark.parametrize("good", ["lits117_subvolume_x0y0z0", "1.2.840.113619.2.55.3", "case-01", "a"])
def test_ids_that_name_entries_pass(good):
    assert check_image_id(good) == good


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "..", ".hidden", "", "x" * 300, "a..b", "/etc/passwd", "a b"])
def test_path_like_ids_are_rejected(bad):
    with pytest.raises(BadRequest, match="not allowed"):
        check_image_id(bad)
