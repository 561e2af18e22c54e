"""medlabel: MONAI Label apps for four task kinds behind one contract."""

__version__ = "0.1.0"
