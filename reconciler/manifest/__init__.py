"""Manifests: the desired-state models and the loader that reads them from files."""
