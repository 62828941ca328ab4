"""Round trips through Shoal's HTTP front door with real, unmodified clients.

Usage: roundtrip.py CLIENT ENDPOINT BUCKET
  CLIENT   aistore | boto3 | minio
  ENDPOINT http://HOST:PORT of a Shoal node serving HTTP

Each client creates BUCKET, puts objects from 0 B to 64 MiB and reads them back byte-identical,
names that are hard on URLs, lists with paging (and a delimiter for S3), deletes, and checks
that errors are the client's own error types. Prints one `ok ...` line per check and exits 0,
or prints the failure and exits 1. The Rust test (tests/http_clients.rs) runs it.
"""

import base64
import datetime
import hashlib
import io
import os
import random
import sys
import tempfile

SIZES = [0, 1, 1000, (1 << 20) + 3, 64 << 20]
# The gateway reads bodies up to this size whole, so their MD5 is stored (the ETag) whether or
# not the client sent Content-MD5; a larger single PUT stores it when Content-MD5 was sent.
WHOLE = 8 << 20
NAMES = ["a b", '&+-é"', "%2F", "dir/", "../x", "n" * 1024]


def data(n, seed):
    return random.Random(seed).randbytes(n)


def md5(b):
    return hashlib.md5(b).hexdigest()


def ok(what):
    print("ok", what, flush=True)


def run_aistore(endpoint, bucket):
    from aistore.sdk import Client
    from aistore.sdk.errors import ErrBckNotFound, ErrObjNotFound, ErrBckAlreadyExists

    c = Client(endpoint)
    smap = c.cluster().get_info()
    assert smap.tmap and smap.proxy_si.public_net.direct_url, smap
    assert c.cluster().is_ready()
    ok("get_info, is_ready")
    b = c.bucket(bucket).create()
    try:
        c.bucket(bucket).create()
        raise AssertionError("second create did not fail")
    except ErrBckAlreadyExists:
        pass
    assert bucket in [m.name for m in c.cluster().list_buckets()]
    b.head()
    ok("bucket create/head/list")
    for i, n in enumerate(SIZES):
        d = data(n, i)
        b.object(f"size-{n}").get_writer().put_content(d)
        got = b.object(f"size-{n}").get_reader().read_all()
        assert md5(got) == md5(d), f"size {n}: content differs"
        props = b.object(f"size-{n}").head()
        assert props.size == n
        if n <= WHOLE:
            assert props.etag == md5(d), (n, props.etag)
    ok("put_content/read_all 0 B .. 64 MiB, ETag = MD5")
    with tempfile.NamedTemporaryFile() as f:
        d = data(5 << 20, 99)
        f.write(d)
        f.flush()
        b.object("from-file").get_writer().put_file(f.name)
        assert b.object("from-file").get_reader().read_all() == d
    ok("put_file")
    d = data(1000, 1000)
    b.object("ranged").get_writer().put_content(d)
    assert b.object("ranged").get_reader(byte_range="bytes=10-19").read_all() == d[10:20]
    assert b.object("ranged").get_reader(byte_range="bytes=-5").read_all() == d[-5:]
    ok("byte ranges")
    # The SDK picks the owning target itself (HRW over the map's id_digest) and reads there.
    assert b.object("ranged").get_reader(direct=True).read_all() == d
    ok("get_reader(direct=True)")
    # S3 and native are two views of one object: what an S3 writer attached shows natively.
    s3 = s3_client(endpoint)
    s3.put_object(Bucket=bucket, Key="from-s3", Body=b"s3", ContentType="text/x-shoal", Metadata={"colour": "teal"})
    props = b.object("from-s3").head()
    assert props.custom_metadata == {"colour": "teal"}, props.custom_metadata
    assert props.etag == md5(b"s3") and props.last_modified, props.etag
    ok("S3 user metadata as ais-custom-md, ETag, Last-Modified")
    # "../x": requests/urllib3 remove dot segments from the URL path before sending, so the
    # SDK cannot address such a name (as with AIStore itself).
    for name in [n for n in NAMES if n != "../x"]:
        d = name.encode() * 3
        b.object(name).get_writer().put_content(d)
        assert b.object(name).get_reader().read_all() == d, name
        assert b.object(name).head().size == len(d)
    ok("names")
    for i in range(25):
        b.object(f"page/{i:03}").get_writer().put_content(b"x")
    page = b.list_objects(prefix="page/", page_size=10)
    assert len(page.entries) == 10 and page.continuation_token, page
    everything = b.list_all_objects(prefix="page/", page_size=7)
    assert [e.name for e in everything] == [f"page/{i:03}" for i in range(25)]
    ok("list_objects / list_all_objects with paging")
    b.object("page/000").delete()
    try:
        b.object("page/000").get_reader().read_all()
        raise AssertionError("deleted object still readable")
    except ErrObjNotFound:
        pass
    try:
        c.bucket(bucket + "-missing").object("x").get_reader().read_all()
        raise AssertionError("missing bucket readable")
    except ErrBckNotFound:
        pass
    ok("delete, not-found errors")
    b.delete()
    assert bucket not in [m.name for m in c.cluster().list_buckets()]
    ok("bucket delete")


def s3_client(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint + "/s3",
        aws_access_key_id=os.environ.get("S3_KEY", "anykey"),
        aws_secret_access_key=os.environ.get("S3_SECRET", "anysecret"),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def run_boto3(endpoint, bucket):
    from botocore.exceptions import ClientError

    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    ok("bucket create/head/list")
    for i, n in enumerate(SIZES):
        d = data(n, i)
        kw = {} if n <= WHOLE else {"ContentMD5": base64.b64encode(hashlib.md5(d).digest()).decode()}
        r = s3.put_object(Bucket=bucket, Key=f"size-{n}", Body=d, **kw)
        assert r["ETag"].strip('"') == md5(d), "PutObject ETag is not the MD5"
        head = s3.head_object(Bucket=bucket, Key=f"size-{n}")
        assert head["ETag"].strip('"') == md5(d), (n, head["ETag"])
        got = s3.get_object(Bucket=bucket, Key=f"size-{n}")
        assert got["ETag"].strip('"') == md5(d), (n, got["ETag"])
        assert md5(got["Body"].read()) == md5(d), f"size {n}: content differs"
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket, Prefix="size-")["Contents"]}
    now = datetime.datetime.now(datetime.timezone.utc)
    for i, n in enumerate(SIZES):
        o = listed[f"size-{n}"]
        assert o["ETag"].strip('"') == md5(data(n, i)), (n, o["ETag"])
        assert abs((now - o["LastModified"]).total_seconds()) < 600, o["LastModified"]
    ok("put_object/get_object 0 B .. 64 MiB, ETag = MD5 on PUT, HEAD, GET and in listings")
    s3.put_object(
        Bucket=bucket, Key="typed", Body=b"{}", ContentType="application/json", Metadata={"Colour": "teal", "n": "1"}
    )
    for r in (s3.head_object(Bucket=bucket, Key="typed"), s3.get_object(Bucket=bucket, Key="typed")):
        assert r["ContentType"] == "application/json", r["ContentType"]
        assert r["Metadata"] == {"colour": "teal", "n": "1"}, r["Metadata"]
    s3.copy_object(Bucket=bucket, Key="typed-copy", CopySource={"Bucket": bucket, "Key": "typed"})
    r = s3.head_object(Bucket=bucket, Key="typed-copy")
    assert r["ContentType"] == "application/json" and r["Metadata"] == {"colour": "teal", "n": "1"}, r
    assert r["ETag"].strip('"') == md5(b"{}"), r["ETag"]
    s3.copy_object(
        Bucket=bucket,
        Key="typed-copy",
        CopySource={"Bucket": bucket, "Key": "typed"},
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"other": "x"},
    )
    r = s3.head_object(Bucket=bucket, Key="typed-copy")
    assert r["ContentType"] == "text/plain" and r["Metadata"] == {"other": "x"}, r
    ok("content type and x-amz-meta-* kept, copied, replaced")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "big")
        d = data(40 << 20, 7)
        with open(src, "wb") as f:
            f.write(d)
        s3.upload_file(src, bucket, "multipart")  # > 8 MiB: multipart upload
        head = s3.head_object(Bucket=bucket, Key="multipart")
        assert head["ContentLength"] == len(d)
        part_md5s = b"".join(hashlib.md5(d[i : i + (8 << 20)]).digest() for i in range(0, len(d), 8 << 20))
        assert head["ETag"].strip('"') == hashlib.md5(part_md5s).hexdigest() + "-5", head["ETag"]
        dst = os.path.join(tmp, "back")
        s3.download_file(bucket, "multipart", dst)
        assert md5(open(dst, "rb").read()) == md5(d)
        parts = [d[i : i + (8 << 20)] for i in range(0, len(d), 8 << 20)]
        ok("multipart upload_file (40 MiB, 8 MiB parts), download_file")
    u = s3.create_multipart_upload(Bucket=bucket, Key="manual")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="manual", UploadId=u, PartNumber=1, Body=parts[0])["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="manual", UploadId=u, PartNumber=2, Body=b"tail")["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key="manual", UploadId=u)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1, 2]
    assert any(up["UploadId"] == u for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    r = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="manual",
        UploadId=u,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    want = hashlib.md5(bytes.fromhex(md5(parts[0])) + bytes.fromhex(md5(b"tail"))).hexdigest() + "-2"
    assert r["ETag"].strip('"') == want, (r["ETag"], want)
    assert s3.head_object(Bucket=bucket, Key="manual")["ETag"].strip('"') == want
    assert s3.get_object(Bucket=bucket, Key="manual")["Body"].read() == parts[0] + b"tail"
    u2 = s3.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=u2, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=u2)
    try:
        s3.list_parts(Bucket=bucket, Key="aborted", UploadId=u2)
        raise AssertionError("aborted upload still listed")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchUpload", e.response
    ok("multipart by hand: ETag = MD5 of part MD5s -N, list parts/uploads, abort")
    d = data(1000, 5)
    s3.put_object(Bucket=bucket, Key="ranged", Body=d)
    r = s3.get_object(Bucket=bucket, Key="ranged", Range="bytes=100-199")
    assert r["Body"].read() == d[100:200] and r["ContentRange"] == "bytes 100-199/1000"
    assert r["ETag"].strip('"') == md5(d), r["ETag"]
    r = s3.get_object(Bucket=bucket, Key="ranged", Range="bytes=-10")
    assert r["Body"].read() == d[-10:] and r["ContentRange"] == "bytes 990-999/1000"
    r = s3.get_object(Bucket=bucket, Key="ranged", Range="bytes=995-")
    assert r["Body"].read() == d[995:] and r["ContentRange"] == "bytes 995-999/1000"
    try:
        s3.get_object(Bucket=bucket, Key="ranged", IfNoneMatch=md5(d))
        raise AssertionError("If-None-Match with the ETag did not answer 304")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, e.response
    try:
        s3.get_object(Bucket=bucket, Key="ranged", Range="bytes=5000-6000")
        raise AssertionError("out-of-range read succeeded")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 416, e.response
    ok("ranges (first-last, suffix, open-ended), 416, If-None-Match")
    for name in NAMES:
        d = name.encode() * 3
        s3.put_object(Bucket=bucket, Key=name, Body=d)
        assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == d, name
    ok("names")
    r = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "ranged"})
    assert r["CopyObjectResult"]["ETag"].strip('"') == md5(data(1000, 5)), r
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == data(1000, 5)
    ok("copy_object")
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"tree/d{i % 3}/f{i:02}", Body=b"t")
    s3.put_object(Bucket=bucket, Key="tree/top", Body=b"t")
    r = s3.list_objects_v2(Bucket=bucket, Prefix="tree/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["tree/d0/", "tree/d1/", "tree/d2/"], r
    assert [o["Key"] for o in r["Contents"]] == ["tree/top"], r
    keys, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, Prefix="tree/", MaxKeys=5, **kw)
        keys += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert len(keys) == 13 and keys == sorted(keys), keys
    pages = s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="tree/", PaginationConfig={"PageSize": 4})
    assert sum(len(p.get("Contents", [])) for p in pages) == 13
    pages = s3.get_paginator("list_objects").paginate(
        Bucket=bucket, Prefix="tree/", Delimiter="/", PaginationConfig={"PageSize": 2}
    )
    seen = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    assert seen == ["tree/d0/", "tree/d1/", "tree/d2/"], seen
    ok("list v2 with delimiter and continuation, list v1 paging")
    s3.delete_object(Bucket=bucket, Key="copy")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"tree/d0/f{i:02}"} for i in (0, 3, 6, 9)]})
    assert len(r["Deleted"]) == 4
    try:
        s3.head_object(Bucket=bucket, Key="copy")
        raise AssertionError("deleted object still there")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    try:
        s3.get_object(Bucket=bucket, Key="never-was")
        raise AssertionError("missing object readable")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey", e.response
    try:
        s3.delete_bucket(Bucket=bucket)
        raise AssertionError("deleted a non-empty bucket")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "BucketNotEmpty", e.response
    ok("delete_object(s), NoSuchKey, BucketNotEmpty")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "ranged"}, ExpiresIn=300)
    print("presigned", url, md5(data(1000, 5)), flush=True)


def run_minio(endpoint, bucket):
    from minio import Minio
    from minio.error import S3Error

    host = endpoint.split("://", 1)[1]
    m = Minio(host, access_key="anykey", secret_key="anysecret", secure=False, region="us-east-1")
    m.make_bucket(bucket)
    assert m.bucket_exists(bucket)
    ok("bucket create/exists")
    for i, n in enumerate(SIZES):
        d = data(n, i)
        m.put_object(bucket, f"size-{n}", io.BytesIO(d), len(d))
        r = m.get_object(bucket, f"size-{n}")
        got = r.read()
        r.close()
        r.release_conn()
        assert md5(got) == md5(d), f"size {n}: content differs"
        if n <= WHOLE:
            assert m.stat_object(bucket, f"size-{n}").etag == md5(d), n
    ok("put_object/get_object 0 B .. 64 MiB (multipart above 5 MiB parts), ETag = MD5")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "big")
        with open(src, "wb") as f:
            f.write(data(20 << 20, 3))
        m.fput_object(bucket, "file", src, part_size=5 << 20)
        m.fget_object(bucket, "file", os.path.join(tmp, "back"))
        assert md5(open(os.path.join(tmp, "back"), "rb").read()) == md5(data(20 << 20, 3))
    ok("fput_object (multipart, 5 MiB parts) / fget_object")
    # "../x": minio refuses dot segments in names itself.
    for name in [n for n in NAMES if n != "../x"]:
        d = name.encode() * 3
        m.put_object(bucket, name, io.BytesIO(d), len(d))
        r = m.get_object(bucket, name)
        assert r.read() == d, name
        r.close()
        r.release_conn()
    ok("names")
    for i in range(12):
        m.put_object(bucket, f"tree/d{i % 3}/f{i:02}", io.BytesIO(b"t"), 1)
    top = [o.object_name for o in m.list_objects(bucket, prefix="tree/")]
    assert top == ["tree/d0/", "tree/d1/", "tree/d2/"], top
    assert len(list(m.list_objects(bucket, prefix="tree/", recursive=True))) == 12
    ok("list with delimiter, recursive")
    m.remove_object(bucket, "tree/d0/f00")
    try:
        m.stat_object(bucket, "tree/d0/f00")
        raise AssertionError("deleted object still there")
    except S3Error as e:
        assert e.code in ("NoSuchKey", "ResourceNotFound"), e


def main():
    client, endpoint, bucket = sys.argv[1:4]
    try:
        {"aistore": run_aistore, "boto3": run_boto3, "minio": run_minio}[client](endpoint, bucket)
    except Exception as e:  # noqa: BLE001 - report any failure to the Rust test
        import traceback

        traceback.print_exc()
        print(f"FAILED {client}: {e!r}", flush=True)
        sys.exit(1)
    print(f"done {client}", flush=True)


if __name__ == "__main__":
    main()
