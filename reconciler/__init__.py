"""Keep the models loaded on ModelsLab accounts equal to what YAML manifests declare."""

__version__ = "0.1.0"
