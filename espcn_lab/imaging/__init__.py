"""Pixels: pure image operations and THE image reader.

Rule: imports numpy, Pillow, resize_right, torch (tensor flips) and ``espcn_lab.errors`` only: no Lightning,
no other espcn_lab package, so data prep, training, evaluation and deployment all stand on it.
``read`` decodes files, ``colour`` converts BT.601 as MATLAB, ``degrade`` makes LR images,
``resize_fast`` speeds up resize_right bit for bit, ``dihedral`` holds the 8 flips/rotations.
"""
