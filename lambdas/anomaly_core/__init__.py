"""Pure-Python core shared by the anomaly trainer, the detector and the offline scorer (no Prophet, no pandas)."""
