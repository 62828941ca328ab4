"""S3 signatures against a cluster with auth on, with boto3.

Usage: auth_s3.py ENDPOINT ACCESS_KEY SECRET
Checks that the right key works (single and multipart uploads, SigV4 presigned URLs), and
that a wrong secret, an unknown key and no signature at all are refused with S3's codes and
store nothing. Prints `presigned URL` and `tampered URL` lines for the Rust test to fetch with
curl, then `done`.
"""

import os
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint, ak, sk, **cfg):
    return boto3.client(
        "s3",
        endpoint_url=endpoint + "/s3",
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, **cfg),
    )


def refused(fn, code):
    try:
        fn()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e.response}"
        return
    raise AssertionError(f"expected {code}, but it succeeded")


def main():
    endpoint, ak, sk = sys.argv[1:4]
    good = client(endpoint, ak, sk, signature_version="s3v4")
    good.create_bucket(Bucket="authb")
    good.put_object(Bucket="authb", Key="k", Body=b"signed")
    assert good.get_object(Bucket="authb", Key="k")["Body"].read() == b"signed"
    data = os.urandom(10 << 20)
    with open("big.bin", "wb") as f:
        f.write(data)
    good.upload_file("big.bin", "authb", "big")  # multipart, each part signed
    assert good.get_object(Bucket="authb", Key="big")["Body"].read() == data
    print("ok right key: put, get, multipart", flush=True)

    wrong = client(endpoint, ak, "not-the-secret")
    refused(lambda: wrong.put_object(Bucket="authb", Key="w", Body=b"x"), "SignatureDoesNotMatch")
    unknown = client(endpoint, "NOSUCHKEY", sk)
    refused(lambda: unknown.put_object(Bucket="authb", Key="u", Body=b"x"), "InvalidAccessKeyId")
    anon = client(endpoint, ak, sk, signature_version=UNSIGNED)
    refused(lambda: anon.put_object(Bucket="authb", Key="a", Body=b"x"), "AccessDenied")
    for k in ["w", "u", "a"]:
        refused(lambda: good.head_object(Bucket="authb", Key=k), "404")
    print("ok wrong secret, unknown key, anonymous: refused, nothing stored", flush=True)

    url = good.generate_presigned_url("get_object", Params={"Bucket": "authb", "Key": "k"}, ExpiresIn=300)
    i = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    bad = url[:i] + ("0" if url[i] != "0" else "1") + url[i + 1 :]
    print("presigned", url, flush=True)
    print("tampered", bad, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
