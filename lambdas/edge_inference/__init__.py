"""Lambda@Edge origin-request function: POST /embed -> all-MiniLM-L6-v2 (ONNX INT8) sentence embedding."""

import os

if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda only: before numpy is imported (by the handler)
    # numpy's OpenBLAS starts a thread per core at import (~30 ms CPU of a cold start measured on 2 cores); the
    # function never runs a BLAS call that threads would speed up (ONNX Runtime has its own pool, 1 thread).
    # Lambda@Edge has no environment variables to set it with ("Lambda@Edge restrictions", CloudFront docs).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
