"""NAB scoring of the anomaly detector (not part of `make test`: run `make bench-anomaly`)."""
