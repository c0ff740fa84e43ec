"""Five-minute anomaly detector: latest value -> forecast band -> score/confidence -> CloudWatch (+ SNS once)."""
