"""Babysitter's tuner: a coarse-to-fine Keras Tuner search over heads on cached features, then
fine-tuning of the best configurations (``python -m tuner search …``).

Pure pieces (no training): :mod:`tuner.space` (the ranges searched) and :mod:`tuner.stages` (the
stage plan, narrowing, edge-of-range warnings). Nothing is imported here, so ``import tuner`` stays
cheap (Keras and Keras Tuner load only where a search runs).
"""
