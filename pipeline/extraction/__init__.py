"""Extraction: pages through the API and lands the raw pages on disk, the source of truth for replay."""
