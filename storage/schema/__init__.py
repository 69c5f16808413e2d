"""Schema modules, one per component; see :mod:`storage.migrate`."""
