"""The warehouse: the HIS/LIS extract's schema, the demo generator, loaders and the read-only executor."""
