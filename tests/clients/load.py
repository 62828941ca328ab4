"""Continuous reads and writes through one real client until told to stop.

Usage: load.py CLIENT ENDPOINT BUCKET STOPFILE
  CLIENT   aistore | boto3 (unmodified, default settings: their own retries included)

Writes objects of 1..64 KiB, reads a random earlier one back after each write and compares,
until STOPFILE exists; then reads every object it wrote once more. Prints one JSON line:
{"client", "writes", "reads", "errors", "first_errors"}. Every failed or wrong operation
counts as an error. The Rust test (tests/http_lifecycle.rs) runs it during lifecycle operations.
"""

import json
import os
import random
import sys
import time


def main():
    client, endpoint, bucket, stopfile = sys.argv[1:5]
    rng = random.Random(client)
    if client == "aistore":
        from aistore.sdk import Client

        b = Client(endpoint).bucket(bucket)

        def put(k, d):
            b.object(k).get_writer().put_content(d)

        def get(k):
            return b.object(k).get_reader().read_all()

    elif client == "boto3":
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint + "/s3",
            aws_access_key_id="anykey",
            aws_secret_access_key="anysecret",
            region_name="us-east-1",
        )

        def put(k, d):
            s3.put_object(Bucket=bucket, Key=k, Body=d)

        def get(k):
            return s3.get_object(Bucket=bucket, Key=k)["Body"].read()

    else:
        raise SystemExit(f"unknown client {client}")

    written = {}
    stats = {"client": client, "writes": 0, "reads": 0, "errors": 0, "first_errors": []}

    def fail(what):
        stats["errors"] += 1
        if len(stats["first_errors"]) < 5:
            stats["first_errors"].append(f"{time.strftime('%H:%M:%S')} {what}")

    def check(k):
        try:
            got = get(k)
            stats["reads"] += 1
            if got != written[k]:
                fail(f"{k}: read {len(got)} bytes that differ from the {len(written[k])} written")
        except Exception as e:  # noqa: BLE001 - every failure counts
            fail(f"get {k}: {e!r}")

    i = 0
    while not os.path.exists(stopfile):
        k = f"load-{client}/{i:06}"
        d = rng.randbytes(rng.randint(1, 64) * 1024)
        try:
            put(k, d)
            written[k] = d
            stats["writes"] += 1
        except Exception as e:  # noqa: BLE001
            fail(f"put {k}: {e!r}")
        if written:
            check(rng.choice(list(written)))
        i += 1
    for k in written:
        check(k)
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
