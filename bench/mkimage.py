#!/usr/bin/env python3
"""Write an OCI image layout for the benchmarks, without cimg (tar + gzip of the host's files).

  mkimage.py --layout DIR --tag TAG [--gzip-level N] LAYER...

LAYER is one of
  usr:MB        host files (from /usr/share, /usr/lib, /usr/bin) adding up to MB megabytes of
                file data, each layer taking the next files of one fixed list, so that the
                layers of one image are all different (real file-size mix, real compressibility)
  dir:PATH      the contents of PATH (e.g. a busybox root filesystem)
  tiny:N        one small file /layers/N (many-layer images)
The image's config names the layers' diff_ids; skopeo pushes the layout to a registry.
"""
import argparse
import hashlib
import json
import os
import subprocess
import tempfile

ROOTS = ["/usr/share", "/usr/lib", "/usr/bin"]
_files = None
_cursor = 0


def host_files():
    global _files
    if _files is None:
        _files = []
        for root in ROOTS:
            for d, dirs, names in os.walk(root):
                dirs.sort()
                for n in sorted(names):
                    p = os.path.join(d, n)
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    if os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.R_OK):
                        _files.append((p, st.st_size))
    return _files


def pick(mb):
    """The next files of the list until mb megabytes; wraps around (a second pass would repeat
    content: the callers stay below the 9 GB the host has)."""
    global _cursor
    files, want, got, out = host_files(), mb * 1000 * 1000, 0, []
    while got < want:
        p, s = files[_cursor % len(files)]
        _cursor += 1
        out.append(p)
        got += s
    return out


def with_parents(paths):
    seen, out = set(), []
    for p in paths:
        parts = p.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in seen:
                seen.add(d)
                out.append(d)
        out.append(p.strip("/"))
    return out


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def put_blob(layout, path):
    hx = sha_file(path)
    dst = os.path.join(layout, "blobs", "sha256", hx)
    os.replace(path, dst)
    return "sha256:" + hx, os.path.getsize(dst)


def put_json(layout, obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    hx = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", hx), "wb") as f:
        f.write(data)
    return "sha256:" + hx, len(data)


def make_layer(spec, tmp, level):
    kind, _, arg = spec.partition(":")
    tar = os.path.join(tmp, "layer.tar")
    common = ["tar", "--numeric-owner", "--sort=name", "--mtime=2020-01-01", "-cf", tar]
    if kind == "usr":
        lst = os.path.join(tmp, "list")
        with open(lst, "w") as f:
            f.write("\0".join(with_parents(pick(int(arg)))))
        subprocess.run(common + ["-C", "/", "--no-recursion", "--null", "-T", lst], check=True)
    elif kind == "dir":
        subprocess.run(common + ["-C", arg, "."], check=True)
    elif kind == "tiny":
        d = os.path.join(tmp, "tiny")
        os.makedirs(os.path.join(d, "layers"), exist_ok=True)
        with open(os.path.join(d, "layers", arg), "w") as f:
            f.write("layer %s\n" % arg)
        subprocess.run(common + ["-C", d, "--no-recursion", "layers", "layers/" + arg], check=True)
        os.unlink(os.path.join(d, "layers", arg))
    else:
        raise SystemExit("unknown layer kind " + spec)
    diff_id = "sha256:" + sha_file(tar)
    gz = tar + ".gz"
    with open(gz, "wb") as out:
        subprocess.run(["gzip", "-n", "-%d" % level, "-c", tar], stdout=out, check=True)
    os.unlink(tar)
    return diff_id, gz


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--gzip-level", type=int, default=6)
    ap.add_argument("--cmd", default="/bin/sh")
    ap.add_argument("layers", nargs="+")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(a.layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    descs, diff_ids = [], []
    with tempfile.TemporaryDirectory(dir=a.layout) as tmp:
        for spec in a.layers:
            diff_id, gz = make_layer(spec, tmp, a.gzip_level)
            dg, size = put_blob(a.layout, gz)
            diff_ids.append(diff_id)
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": dg, "size": size})
    config = {"created": "2020-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": [a.cmd]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "bench/mkimage.py"}
                          for _ in diff_ids]}
    cd, cs = put_json(a.layout, config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cd, "size": cs},
                "layers": descs}
    md, ms = put_json(a.layout, manifest)
    idx_path = os.path.join(a.layout, "index.json")
    idx = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(idx_path):
        with open(idx_path) as f:
            idx = json.load(f)
    idx["manifests"] = [m for m in idx["manifests"]
                        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != a.tag]
    idx["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": md, "size": ms,
                             "annotations": {"org.opencontainers.image.ref.name": a.tag}})
    with open(idx_path, "w") as f:
        json.dump(idx, f)
    total = sum(d["size"] for d in descs)
    print("%s: %d layer(s), %.1f MB gzip" % (a.tag, len(descs), total / 1e6))


if __name__ == "__main__":
    main()
