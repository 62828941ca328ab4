"""Listings longer than a page, through Shoal's HTTP front door, with real clients.

Usage: listing.py ENDPOINT BUCKET N
  The bucket holds N objects named `many/<d>/obj-<i:06>` (d = i % 7, i < N), written by the
  Rust test (tests/http_listing.rs) across several targets.

boto3 pages through ListObjectsV2 and V1 (1,000 keys a page, with and without a delimiter),
AIStore's SDK through list_all_objects (its default page: 10,000 entries) and list_objects with
a continuation token. Every listing must name each object once, in order. Prints one `ok ...`
line per check and exits 0, or prints the failure and exits 1.
"""

import sys


def ok(what):
    print("ok", what, flush=True)


def main():
    endpoint, bucket, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    want = sorted(f"many/{i % 7}/obj-{i:06}" for i in range(n))

    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint + "/s3",
        aws_access_key_id="anykey",
        aws_secret_access_key="anysecret",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    for version in ("list_objects_v2", "list_objects"):
        pages = list(s3.get_paginator(version).paginate(Bucket=bucket, Prefix="many/"))
        got = [o["Key"] for p in pages for o in p.get("Contents", [])]
        assert got == want, (version, len(got), len(want))
        assert len(pages) == -(-n // 1000), (version, len(pages))
        ok(f"{version}: {n} keys in {len(pages)} pages")
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/", Delimiter="/"))
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    assert prefixes == [f"many/{d}/" for d in range(7)], prefixes
    under = [k for k in want if k.startswith("many/3/")]
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="many/3/", Delimiter="/", PaginationConfig={"PageSize": 500}
        )
    )
    got = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert got == under, (len(got), len(under))
    ok(f"delimiter: 7 common prefixes; {len(under)} keys under one in {len(pages)} pages of 500")

    from aistore.sdk import Client

    b = Client(endpoint).bucket(bucket)
    got = [e.name for e in b.list_all_objects(prefix="many/")]
    assert got == want, (len(got), len(want))
    ok(f"aistore list_all_objects: {n} entries (default page size)")
    got, token, pages = [], "", 0
    while True:
        page = b.list_objects(prefix="many/", page_size=1000, continuation_token=token)
        got += [e.name for e in page.entries]
        pages += 1
        token = page.continuation_token
        if not token:
            break
    assert got == want, (len(got), len(want))
    ok(f"aistore list_objects with continuation_token: {pages} pages")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure to the Rust test
        import traceback

        traceback.print_exc()
        print(f"FAILED: {e!r}", flush=True)
        sys.exit(1)
    print("done", flush=True)
