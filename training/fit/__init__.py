"""The fit loop: from prepared data to a trained, saved classifier.

``prepare`` (data half) → ``two_phase.train`` (head on a frozen backbone, then the top blocks at a
lower rate) with ``callbacks`` (run logger, backups), ``schedules``, ``optimizers``,
``batchnorm`` (frozen statistics and their re-estimation), ``device`` (precision, jit,
compilation cache), ``parallel`` (data-parallel replicas) and ``feature_cache`` (frozen-backbone
features paid once). Import the module you need: this package imports nothing, so
``training.fit.schedules`` (which the configs use) stays free of Keras.
"""
