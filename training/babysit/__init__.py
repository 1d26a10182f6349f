"""Babysitting the learning process (CS231n): checks and diagnoses that return findings."""
