"""The training layer: stage-runs from a manifest — task rows, caches, the loop, resume, executors.

Reads the manifest (``artlib.data``) and builds models (``artlib.models``); writes each stage-run's
folder (``artlib.rundir``) and hands its results row to the driver, the only writer of results.csv.
"""
