"""Batch scoring: folders or manifests of photos -> results files (``weldinspect score``).

``runner`` (resumable, crash-safe scoring through :class:`inspection.pipeline.Inspector`),
``worker`` (torch-free preparation in worker processes) and ``scale`` (the same records on Ray
Data). Import the submodules directly; this package module imports nothing.
"""
