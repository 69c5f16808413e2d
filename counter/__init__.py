"""Remote Counter: the business layer, storage, configuration, CLI and app wiring."""

__version__ = "0.1.0"
