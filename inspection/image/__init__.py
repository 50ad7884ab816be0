"""The image stage: a photo in, a checked, canonical seam strip out (torch-free).

``ingest`` (path/bytes -> RGB array, typed errors), ``quality`` (blur / exposure / seam-found gate),
``preprocess`` (seam search, canonical strip, model tiles, coordinate maps), ``prepare`` (all of
that for one photo, used by the pipeline and by batch worker processes) and ``overlay`` (drawing
results onto a copy). Import the submodules directly; this package module imports nothing.
"""
