"""The hash-chained audit store, its pipeline, anomaly models, alerts and reports."""
