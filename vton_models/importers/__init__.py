"""Importers of released third-party checkpoints onto our networks."""
