"""PrivateBucket: an S3 bucket no one reaches without TLS and credentials, hardened the same way every time.

Encryption (SSE-KMS with a bucket key when a key is given, else SSE-S3), versioning, a public access block, a
bucket policy denying any request without TLS, optionally expiry of noncurrent versions; `force_destroy` where
the stack does not protect stateful resources (staging can be destroyed and redeployed), `protect` where it does.

Not a ComponentResource: the resources are children of the calling component, so their URNs are the ones the
component always had (a URN change is a delete and a create in a real deploy).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from infra.blocks.context import StackContext
from infra.core import iam

# Logical-name suffixes of the children; a component whose resources predate the block overrides some,
# since renaming one would replace it.
DEFAULT_SUFFIXES = {"versioning": "versioning", "sse": "sse", "public_access": "public-access",
                    "tls_only": "tls-only", "lifecycle": "lifecycle"}


class PrivateBucket:
    bucket: aws.s3.Bucket
    name: str  # the physical bucket name
    arn: str  # built from the name: known at preview

    def __init__(self, logical: str, *, parent: pulumi.Resource, ctx: StackContext, name: str,
                 region: str | None = None, kms_key_arn: pulumi.Input[str] | None = None,
                 noncurrent_version_days: int | None = None, expiration_days: int | None = None,
                 suffixes: Mapping[str, str] | None = None) -> None:
        unknown = set(suffixes or {}) - set(DEFAULT_SUFFIXES)
        if unknown:
            raise ValueError(f"PrivateBucket {logical}: unknown child suffix keys {sorted(unknown)}; "
                             f"allowed: {sorted(DEFAULT_SUFFIXES)}")
        sfx = {**DEFAULT_SUFFIXES, **(suffixes or {})}
        child = pulumi.ResourceOptions(parent=parent)
        protect = ctx.protect()
        self.name = name
        self.arn = ctx.arns.bucket(name)
        self.bucket = aws.s3.Bucket(logical, region=region, bucket=name, force_destroy=not protect,
                                    opts=pulumi.ResourceOptions(parent=parent, protect=protect))
        bucket_ref = self.bucket.bucket
        aws.s3.BucketVersioning(
            f"{logical}-{sfx['versioning']}", region=region, bucket=bucket_ref,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child)
        default = (aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn) if kms_key_arn is not None else
            aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"))
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{logical}-{sfx['sse']}", region=region, bucket=bucket_ref,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=default,
                # A bucket key cuts KMS requests (and cost) per object; meaningless with SSE-S3.
                bucket_key_enabled=True if kms_key_arn is not None else None)],
            opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{logical}-{sfx['public_access']}", region=region, bucket=bucket_ref,
            block_public_acls=True, block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketPolicy(
            f"{logical}-{sfx['tls_only']}", region=region, bucket=bucket_ref,
            policy=iam.document(iam.statement(
                ["s3:*"], [self.arn, f"{self.arn}/*"], sid="DenyInsecureTransport", effect="Deny",
                principals={"AWS": "*"}, conditions={"Bool": {"aws:SecureTransport": "false"}})),
            # With the public access block in place first, S3 checks the policy is not public.
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[block]))
        if noncurrent_version_days is not None or expiration_days is not None:
            # `expiration_days`: objects that are no record (run artifacts) expire; old versions follow them.
            noncurrent = noncurrent_version_days if noncurrent_version_days is not None else 1
            aws.s3.BucketLifecycleConfiguration(
                f"{logical}-{sfx['lifecycle']}", region=region, bucket=bucket_ref,
                rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-old-versions" if expiration_days is None else "expire-objects", status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=(aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=expiration_days)
                                if expiration_days is not None else None),
                    noncurrent_version_expiration=aws.s3.
                    BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(noncurrent_days=noncurrent),
                    abort_incomplete_multipart_upload=aws.s3.
                    BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(days_after_initiation=1))],
                opts=child)
