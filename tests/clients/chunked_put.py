"""A PutObject with a streaming SigV4 body (`aws-chunked`, STREAMING-AWS4-HMAC-SHA256-PAYLOAD),
as the AWS SDKs for Go and Java send over plain HTTP; none of the Python clients does, so the
signing is written out here from AWS's published algorithm.

Usage: chunked_put.py ENDPOINT BUCKET KEY ACCESS_KEY SECRET SIZE [tamper]
Prints the HTTP status and the response body; with `tamper`, one byte of the second chunk is
changed after signing (the server must refuse the object).
"""

import hashlib
import hmac
import http.client
import random
import sys
import time
from urllib.parse import urlsplit

CHUNK = 64 * 1024


def h(b):
    return hashlib.sha256(b).hexdigest()


def mac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def main():
    endpoint, bucket, key, ak, sk, size = sys.argv[1:7]
    tamper = len(sys.argv) > 7 and sys.argv[7] == "tamper"
    size = int(size)
    data = random.Random(size).randbytes(size)
    u = urlsplit(endpoint)
    host = u.netloc
    path = f"/s3/{bucket}/{key}"
    now = time.gmtime()
    amzdate = time.strftime("%Y%m%dT%H%M%SZ", now)
    day = time.strftime("%Y%m%d", now)
    region = "us-east-1"
    scope = f"{day}/{region}/s3/aws4_request"
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] + [b""]

    def encoded_len():
        n = 0
        for c in chunks:
            n += len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2
        return n

    headers = {
        "content-encoding": "aws-chunked",
        "content-length": str(encoded_len()),
        "host": host,
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-date": amzdate,
        "x-amz-decoded-content-length": str(size),
    }
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["PUT", path, ""]
        + [f"{k}:{headers[k]}" for k in sorted(headers)]
        + ["", signed, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"]
    )
    kdate = mac(("AWS4" + sk).encode(), day)
    kkey = mac(mac(mac(kdate, region), "s3"), "aws4_request")
    to_sign = f"AWS4-HMAC-SHA256\n{amzdate}\n{scope}\n{h(canonical.encode())}"
    seed = hmac.new(kkey, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={signed}, Signature={seed}"
    )
    body = b""
    prev = seed
    for i, c in enumerate(chunks):
        s = f"AWS4-HMAC-SHA256-PAYLOAD\n{amzdate}\n{scope}\n{prev}\n{h(b'')}\n{h(c)}"
        sig = hmac.new(kkey, s.encode(), hashlib.sha256).hexdigest()
        if tamper and i == 1 and c:
            c = bytes([c[0] ^ 1]) + c[1:]
        body += f"{len(c):x};chunk-signature={sig}\r\n".encode() + c + b"\r\n"
        prev = sig
    conn = http.client.HTTPConnection(host, timeout=60)
    conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(body)
    r = conn.getresponse()
    print(r.status, r.read().decode(errors="replace").replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
