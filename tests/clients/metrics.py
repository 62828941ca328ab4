"""Scrapes `GET /metrics` of each node with a real Prometheus parser.

Usage: metrics.py URL...
Each URL's text must parse with `prometheus_client`'s text parser (the reference Python
client). Prints one JSON document: [{"url", "samples": [{"name", "labels", "value"}]}].
Exits 1 with the error when a scrape fails or does not parse.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    out = []
    for url in sys.argv[1:]:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            assert r.status == 200, (url, r.status)
            ctype = r.headers.get("Content-Type", "")
            assert ctype.startswith("text/plain"), (url, ctype)
            text = r.read().decode()
        samples = []
        for fam in text_string_to_metric_families(text):
            assert fam.name.startswith("shoal_"), fam.name
            for s in fam.samples:
                samples.append({"name": s.name, "labels": s.labels, "value": s.value})
        out.append({"url": url, "samples": samples})
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the test prints whatever went wrong
        print(f"metrics scrape failed: {e!r}", file=sys.stderr)
        sys.exit(1)
