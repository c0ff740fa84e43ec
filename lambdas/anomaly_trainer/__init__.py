"""Weekly (and on-demand) Prophet trainer: history -> model JSON + 7-day forecast band in S3."""
