"""Weld-seam inspection: porosity and spatter grading with evidence and advice."""

__version__ = "0.2.0"
