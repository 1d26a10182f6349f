"""The model: the backbone registry, Babysitter's layers and blocks, the classifier built from
them, the loss, and the per-layer architecture report. Nothing here trains or stores."""
