"""Lambda@Edge origin-request function: POST /embed -> all-MiniLM-L6-v2 (ONNX INT8) sentence embedding."""
