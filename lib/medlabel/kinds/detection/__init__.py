"""3D lesion detection on MONAI's RetinaNet: boxes in world mm, findings, training from boxes or masks."""
