"""The model layer: the ResNet50 backbone with named, freezable blocks, its weights, and checkpoints.

torch, no training loop: ``predict`` and Grad-CAM load a trained stage from here without importing
``artlib.train``.
"""
