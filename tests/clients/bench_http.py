"""Throughput of the HTTP front door with real clients (a measurement, not a test).

Usage: bench_http.py ENDPOINT [MIB]
Moves one object of MIB MiB (default 64) a few times: boto3 single PUT/GET and multipart
(S3, streamed through the node at ENDPOINT), and AIStore's SDK (native, redirected to the
owning target). Prints MiB/s per operation. Run it against a release build, e.g. the
playground (`nodectl playground --detach`, HTTP on port 9080), and read the proxy's peak RSS
from /proc/PID/status (VmHWM; `echo 5 > /proc/PID/clear_refs` resets it first).
"""

import os
import sys
import tempfile
import time

import boto3
from aistore.sdk import Client


def timed(label, mib, fn, runs=3):
    best = None
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    print(f"{label:<28} {mib / best:8.1f} MiB/s  (best of {runs}, {best:.2f} s)", flush=True)


def main():
    endpoint = sys.argv[1]
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    data = os.urandom(mib << 20)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint + "/s3",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    bucket = "bench-http"
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        pass
    timed("s3 put_object (1 PUT)", mib, lambda: s3.put_object(Bucket=bucket, Key="o", Body=data))
    timed("s3 get_object", mib, lambda: s3.get_object(Bucket=bucket, Key="o")["Body"].read())
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        timed("s3 upload_file (multipart)", mib, lambda: s3.upload_file(f.name, bucket, "m"))
    b = Client(endpoint).bucket(bucket)
    timed("native put_content (307)", mib, lambda: b.object("n").get_writer().put_content(data))
    timed("native read_all (307)", mib, lambda: b.object("n").get_reader().read_all())


if __name__ == "__main__":
    main()
