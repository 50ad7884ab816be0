"""Scale-out batch scoring (Ray Data). Import :mod:`inspection.batch.scale.ray_engine` explicitly: it needs
``ray`` and is only loaded by ``weldinspect score --engine ray`` and the scale benchmark."""
