#!/usr/bin/env python3
"""Write the seed corpora of the fuzz harnesses into tests/fuzz/corpus/<harness>/.

The seeds are committed; run this again only to regenerate them (it is deterministic: fixed
mtimes, no user names). Files whose names start with "crash-" are inputs of past findings and
are never touched here."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
MTIME = 1600000000


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tar(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, kind, payload) with kind file/dir/sym/link/chr/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            ti.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                data = b"" if isinstance(payload, dict) else data
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            elif kind == "chr":
                ti.type, (ti.devmajor, ti.devminor) = tarfile.CHRTYPE, payload
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            if isinstance(payload, dict):
                ti.pax_headers = payload
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gz(b):
    return gzip.compress(b, mtime=0)


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layers():
    put("layer", "basic.tar", tar([
        ("etc/", "dir", None), ("etc/passwd", "file", "root:x:0:0::/root:/bin/sh\n"),
        ("bin/", "dir", None), ("bin/sh", "file", "#!"), ("bin/ash", "link", "bin/sh"),
        ("lib", "sym", "usr/lib"), ("dev/null", "chr", (1, 3)), ("run/fifo", "fifo", None)]))
    put("layer", "basic.tar.gz", gz(tar([("a/b/c", "file", "abc"), ("a/l", "sym", "../x")])))
    put("layer", "whiteouts.tar", tar([
        ("d/", "dir", None), ("d/f", "file", "f"), ("d/.wh.f", "file", ""),
        ("o/.wh..wh..opq", "file", ""), (".wh.gone", "file", ""),
        (".wh..wh.plnk", "file", "")]))
    put("layer", "escape-symlink.tar", tar([
        ("etc", "sym", "/"), ("etc/passwd", "file", "pwned"), ("up", "sym", "../../../../canary"),
        ("up/file", "file", "pwned"), ("abs", "sym", "/dev/shm"), ("abs/x", "file", "x")]))
    put("layer", "escape-hardlink.tar", tar([
        ("f", "file", "f"), ("h1", "link", "../outside"), ("h2", "link", "f")]))
    put("layer", "dotdot.tar", tar([("a/../../canary/file", "file", "pwned")]))
    put("layer", "xattrs.tar", tar([
        ("x", "file", {"SCHILY.xattr.trusted.overlay.opaque": "y",
                       "SCHILY.xattr.user.kept": "k"})]))
    put("layer", "gnu-longname.tar",
        tar([("n" * 150 + "/" + "m" * 150, "file", "long")], fmt=tarfile.GNU_FORMAT))
    put("layer", "ustar.tar", tar([("u/v", "file", "w"), ("u/s", "sym", "v")],
                                  fmt=tarfile.USTAR_FORMAT))
    put("layer", "empty.tar", b"\0" * 1024)
    # Fresh deep paths (created by walking down one name at a time), kept shallow enough that
    # the fuzzer's mutations of it stay fast.
    put("layer", "deep-new-paths.tar",
        tar([("x%d/" % k + "a/" * 150 + "f", "file", "") for k in range(2)]))


def docker_archive():
    layer = tar([("hello", "file", "hello\n"), ("bin/", "dir", None)])
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
        "config": {"Cmd": ["/hello"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    cname = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cname, "RepoTags": ["fuzz/hello:1"],
                            "Layers": ["abc/layer.tar"]}]).encode()
    put("archive", "docker-archive.tar", tar([
        ("manifest.json", "file", manifest), (cname, "file", config),
        ("abc/", "dir", None), ("abc/layer.tar", "file", layer)]))
    put("archive", "docker-archive.tar.gz", gz(tar([
        ("manifest.json", "file", manifest), (cname, "file", config),
        ("abc/layer.tar", "file", layer)])))
    # The same image as an OCI layout, its layer gzipped.
    lgz = gz(layer)
    oman = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(lgz), "size": len(lgz)}]}).encode()
    index = json.dumps({
        "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(oman),
            "size": len(oman),
            "annotations": {"org.opencontainers.image.ref.name": "1"}}]}).encode()
    blob = lambda b: ("blobs/sha256/" + hashlib.sha256(b).hexdigest(), "file", b)
    put("archive", "oci-layout.tar", tar([
        ("oci-layout", "file", '{"imageLayoutVersion": "1.0.0"}'), ("index.json", "file", index),
        blob(oman), blob(config), blob(lgz)]))
    # An archive whose layer tries to leave the root.
    evil = tar([("etc", "sym", "/"), ("etc/x", "file", "x"), ("h", "link", "../../outside")])
    econfig = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(evil)]}}).encode()
    ename = hashlib.sha256(econfig).hexdigest() + ".json"
    put("archive", "evil-layer.tar", tar([
        ("manifest.json", "file", json.dumps([{"Config": ename, "RepoTags": None,
                                                "Layers": ["l.tar"]}])),
        (ename, "file", econfig), ("l.tar", "file", evil)]))
    put("manifest", "config.json", config)
    put("manifest", "oci-manifest.json", oman)
    put("manifest", "oci-index.json", index)


def manifests():
    d = "sha256:" + "a" * 64
    put("manifest", "docker-manifest.json", json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7,
                   "digest": d},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1, "digest": d},
                   {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "size": 2,
                    "digest": d}]}))
    plats = [("linux", "amd64", None), ("linux", "arm64", "v8"), ("linux", "arm", "v7"),
             ("windows", "amd64", None)]
    put("manifest", "docker-list.json", json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "size": 10, "digest": d,
                       "platform": dict({"os": o, "architecture": a},
                                        **({"variant": v} if v else {}))}
                      for o, a, v in plats]}))
    put("manifest", "config-scratch.json", json.dumps({"rootfs": {"diff_ids": None},
                                                       "created": "1970-01-01T00:00:00.5+01:00"}))


def texts():
    put("dockerfile", "multistage", """# syntax=docker/dockerfile:1
# escape=\\
ARG BASE=busybox
FROM ${BASE}:latest AS build
ENV A=1 B="two words" \\
    C=${A:-x}
RUN echo $A && \\
    echo done
COPY --from=build --chown=1:1 ["a b", "/c"]
WORKDIR /w
FROM build
ONBUILD RUN ls
HEALTHCHECK --interval=5s CMD ["true"]
CMD ["sh", "-c", "echo hi"]
""")
    put("dockerfile", "heredoc", """FROM scratch
RUN <<EOF bash
echo one
EOF
COPY <<-"END" /etc/x
\tliteral $HOME
\tEND
RUN 3<<A cat <&3
x
A
""")
    put("dockerfile", "backtick", "# escape=`\nFROM x\nRUN dir `\n  c:\\\nLABEL a=b \"c d\"=e\nEXPOSE 80/tcp 53/udp\n")
    put("expand", "defaults", "\x00${A:-d} ${B:+x} ${C-y} $D ${E#*/} ${F%%.*} ${G/a/b}\nA=1\nB=2\nE=a/b/c\nF=x.y.z\nG=banana\n")
    put("expand", "quotes", "\x02'single $A' \"double $A\" \\$A unq$A\nA=a b\n")
    put("expand", "backtick", "\x01`$A `${B}\nA=1\nB\n")
    put("expand", "error", "\x00${A:?is unset} ${\n")
    refs = ["ubuntu", "library/ubuntu:22.04", "docker.io/library/ubuntu@sha256:" + "0" * 64,
            "127.0.0.1:5000/a/b/c:tag", "localhost/x", "[::1]:5000/y:z", "Upper/Case",
            "a:b@sha256:" + "f" * 64, "index.docker.io/x"]
    for i, r in enumerate(refs):
        put("reference", "ref%d" % i, r)
    headers = ['Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
               'scope="repository:library/ubuntu:pull"',
               'Basic realm="basic-realm"', 'bearer realm=x, error="invalid_token"',
               'Bearer realm="a\\"b",scope="repository:a:pull,push"',
               'bytes 0-99/100', '120', '0-4096', '64MiB', '2026-11-23T19:00:00.123+01:00']
    for i, h in enumerate(headers):
        put("www_authenticate", "h%d" % i, h)


def main():
    for h in ("dockerfile", "expand", "reference", "manifest", "www_authenticate", "archive",
              "layer"):
        d = os.path.join(CORPUS, h)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if not f.startswith("crash-"):
                    os.unlink(os.path.join(d, f))
    layers()
    docker_archive()
    manifests()
    texts()
    return 0


if __name__ == "__main__":
    sys.exit(main())
