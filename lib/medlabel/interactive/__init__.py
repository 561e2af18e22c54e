"""Helpers shared by the interactive kinds (scribbles, clicks): cached volumes and boxes in voxel space."""
