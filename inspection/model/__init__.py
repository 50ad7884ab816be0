"""The grading model: network, ordinal helpers, artifact I/O, runtime and post-processing.

Nothing here imports training code or albumentations; the serving path imports only this package.
Import submodules directly (``from inspection.model.net import build_model``); this package
module stays light so ``import inspection.model`` does not pull in torch.
"""
