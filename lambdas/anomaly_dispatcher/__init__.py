"""Anomaly fan-out: the metrics in batches to the detection (every 5 minutes) and training (weekly) queues."""
