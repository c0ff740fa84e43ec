"""CloudWatch Synthetics canary: POST /embed through CloudFront and the REST tier's health endpoints."""
