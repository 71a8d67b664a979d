"""The model layer: the backbones (registry.py) with named, freezable blocks, their weights, and checkpoints.

torch, no training loop: ``predict`` and Grad-CAM load a trained stage from here without importing
``artlib.train``.
"""
