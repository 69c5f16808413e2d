"""Schema modules, one per component; see :mod:`counter.storage.migrate`."""
