"""HeadBucket is authorised by s3:ListBucket, as in AWS.

The AWS API reference (S3, HeadBucket, "Permissions"): "To use this operation, you must have
permissions to perform the s3:ListBucket action." There is no s3:HeadBucket IAM action. moto
5.2.5 checks a HEAD on a bucket against "s3:HeadBucket" when IAM enforcement is on
(reset-auth), so a least-privilege policy that works on AWS is refused by the emulator. This
extension maps HEAD bucket to ListBucket in moto's S3 action table. Nothing else changes.
"""

from __future__ import annotations

from lakemesh_moto import extension, set_mapping


@extension(
    "s3-headbucket-permission",
    service="s3",
    summary="HeadBucket is authorised by s3:ListBucket, as in AWS (moto checks s3:HeadBucket)",
)
def install() -> None:
    from moto.s3 import responses

    set_mapping(
        responses.ACTION_MAP["BUCKET"]["HEAD"],
        "DEFAULT",
        "ListBucket",
        "s3 IAM action of HeadBucket",
        replace=True,
        reason="AWS authorises HeadBucket with s3:ListBucket; there is no s3:HeadBucket action",
    )
