"""The analysis layer: statistics, verdicts, tables, plots, Grad-CAM and prediction on new images.

Works from the files of a run directory; never imports ``artlib.train`` (a test checks the layers).
"""
