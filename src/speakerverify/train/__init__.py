"""Training: YAML recipes, pluggable tasks, a (DistributedDataParallel) training loop.

``speakerverify train RECIPE.yaml --out RUN_DIR`` or :func:`speakerverify.train.loop.run_training`.
"""
