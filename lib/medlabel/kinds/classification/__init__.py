"""Image- and volume-level classification: class probabilities, Grad-CAM maps, uncertainty and diversity."""
