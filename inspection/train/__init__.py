"""Training: leave-one-weld-out validation, final training, calibration and the model card.

``run`` (orchestration, ``run_training``), ``fit`` (datasets, loaders, ``train_model``), ``loop``
(one epoch, evaluation), ``final`` (the shipped artifact), ``pretrain`` (self-supervised backbone),
``calibrate``, ``metrics``, ``card``, ``cache`` and ``augment`` (the only albumentations import).
Never imported by the serving path. Import the submodules directly.
"""
