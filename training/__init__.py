"""Babysitter's core: data, backbones, model, two-phase fine-tuning, run store and CLI."""
