"""Babysitter's Streamlit app: reads the run store, starts work through the CLI as jobs."""
