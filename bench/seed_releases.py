"""Seeds a running modelreg with MODELS models of VERSIONS versions each, and prod/canary aliases.

Usage: python3 bench/seed_releases.py URL TOKEN [MODELS] [VERSIONS]. Every version has its own small blob
and manifest, published through the HTTP API like a push would be.
"""
import hashlib
import http.client
import json
import sys
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

url, token = sys.argv[1], sys.argv[2]
models = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
versions = int(sys.argv[4]) if len(sys.argv) > 4 else 10
address = urllib.parse.urlparse(url)


def seed(indices):
    connection = http.client.HTTPConnection(address.hostname, address.port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method, path, body):
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {text[:200]!r}")

    for index in indices:
        name = f"m{index:04d}"
        for version in range(versions):
            blob = f"{name} v{version} weights".encode()
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            call("PUT", f"/v1/blobs/{digest}", blob)
            manifest = {"schemaVersion": 1, "format": "other",
                        "files": [{"path": "weights.bin", "digest": digest, "size": len(blob), "executable": False}]}
            call("PUT", f"/v1/models/{name}/versions/{version}/variants/default", json.dumps(manifest))
        call("PUT", f"/v1/models/{name}/aliases/prod", json.dumps({"version": str(versions - 2)}))
        call("PUT", f"/v1/models/{name}/aliases/canary", json.dumps({"version": str(versions - 1)}))


with ThreadPoolExecutor(4) as pool:
    list(pool.map(seed, [range(start, models, 4) for start in range(4)]))
print(f"seeded {models} models x {versions} versions")
