#!/usr/bin/env python3
"""Write a docker-archive (what `docker save` writes) holding N images that share one tiny
layer and differ by their config, tagged bench/imgI:v1 — `images` scaling fixtures, made
without cimg. Usage: mkmany.py OUT.tar N [FIRST]"""
import hashlib
import io
import json
import sys
import tarfile


def add(tar, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1577836800
    tar.addfile(ti, io.BytesIO(data))


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    lbuf = io.BytesIO()
    with tarfile.open(fileobj=lbuf, mode="w", format=tarfile.USTAR_FORMAT) as lt:
        ti = tarfile.TarInfo("etc")
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
        lt.addfile(ti)
        add(lt, "etc/hi", b"hi\n")
    layer = lbuf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    manifest = []
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
        lname = diff_id[7:] + "/layer.tar"
        add(t, lname, layer)
        for i in range(first, first + n):
            cfg = json.dumps({"architecture": "amd64", "os": "linux",
                              "created": "2020-01-01T00:00:00Z",
                              "config": {"Cmd": ["/bin/sh"], "Labels": {"n": str(i)}},
                              "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                              "history": [{"created": "2020-01-01T00:00:00Z",
                                           "comment": "bench %d" % i}]},
                             separators=(",", ":")).encode()
            cname = hashlib.sha256(cfg).hexdigest() + ".json"
            add(t, cname, cfg)
            manifest.append({"Config": cname, "RepoTags": ["bench/img%d:v1" % i],
                             "Layers": [lname]})
        add(t, "manifest.json", json.dumps(manifest).encode())


if __name__ == "__main__":
    main()
