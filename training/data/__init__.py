"""Datasets: safe unpacking, scanning, auditing, splitting, decoding once into a cache, batches."""
