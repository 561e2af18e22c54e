from medlabel.kinds.segmentation.predictor import window_size


def test_window_shrinks_only_along_axes_where_the_image_is_smaller_than_the_roi():
    assert window_size((64, 70, 200), (96, 96, 96)) == (64, 80, 96)
    assert window_size((1, 17, 96), (48, 48, 48)) == (16, 32, 48)
    assert window_size((300, 300, 300), (96, 96, 96)) == (96, 96, 96)
