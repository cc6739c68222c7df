#!/usr/bin/env python3
"""Render docs/benchmarks.md and docs/bench/*.png from one run of bench/all.sh.

  report.py RESULTS.jsonl MACHINE.json NOTES.md OUT.md PNGDIR [LOGDIR]

RESULTS holds the records of bench/timer.py (one comparison each), the peers' lines (`peer`
of lib.sh) and notes; NOTES.md (bench/notes.md) is the analysis people wrote, kept verbatim.
The goals are evaluated here, from the run-by-run ratios, so that the doc and the figures
cannot disagree.
"""
import json
import math
import os
import statistics
import subprocess
import sys

GOALS = [
    # (text, bench, case prefix, numerator, denominator or None, limit, kind)
    ("pull <= 1/4 of skopeo copy + umoci unpack (1 layer)", "pull", "1 layer", "cimg", "skopeo+umoci", 0.25, "ratio"),
    ("pull <= 1/4 of skopeo copy + umoci unpack (5 layers)", "pull", "5 layers", "cimg", "skopeo+umoci", 0.25, "ratio"),
    ("pull <= 1.3 x the floor curl | gzip -dc | tar -x (1 layer)", "pull", "1 layer", "cimg", "floor", 1.3, "ratio"),
    ("pull <= 1.3 x the floor curl | gzip -dc | tar -x (5 layers)", "pull", "5 layers", "cimg", "floor", 1.3, "ratio"),
    ("pull <= 1/4 of podman pull (1 layer)", "pull", "1 layer", "cimg", "podman", 0.25, "ratio"),
    ("pull <= 1/4 of podman pull (5 layers)", "pull", "5 layers", "cimg", "podman", 0.25, "ratio"),
    ("run <= runc run on a prepared bundle", "run", "run --rm", "cimg", "runc", 1.0, "ratio"),
    ("cold build <= 1/2 of Docker's legacy builder", "build", "cold", "cimg", "docker", 0.5, "ratio"),
    ("cold build <= 1/3 of buildah bud --layers", "build", "cold", "cimg", "buildah", 1 / 3, "ratio"),
    ("cached build <= 60 ms", "build", "cached", "cimg", None, 60.0, "abs"),
    ("cached build <= 1/4 of buildah bud --layers", "build", "cached", "cimg", "buildah", 0.25, "ratio"),
    ("images with 1000 images <= 10 ms", "images", "images with 1000", "cimg", None, 10.0, "abs"),
    ("load <= 1.2 x gzip -dc | tar -x", "load", "load", "cimg", "floor", 1.2, "ratio"),
]

CURVES = {
    "pull-size": ("Pull time against layer size", "file data in the layer (MB)", "s", "pull-size"),
    "pull-count": ("Pull time against layer count (40-50 MB of files in all)", "layers", "s", "pull-count"),
    "run-layers": ("run --rm latency against layer count", "layers in the image", "ms", "run-layers"),
    "images": ("cimg images against image count", "images in the store", "ms", "images"),
    "images-instr": ("cimg images: instructions (callgrind) against image count", "images in the store", "M instr", "images-instr"),
    "tag": ("cimg tag (one index update) against image count", "images in the store", "ms", "tag"),
    "tag-instr": ("cimg tag: instructions (callgrind) against image count", "images in the store", "M instr", "tag-instr"),
    "load-many": ("cimg load of many images: time per image", "images in the store after the load", "ms", "load-many"),
    "load-curve-0": ("cimg load of K images into an empty store: time per image", "images in the archive (K)", "ms", "load-curve-0"),
    "load-curve-1000": ("cimg load of K images into a store of 1000: time per image", "images in the archive (K)", "ms", "load-curve-1000"),
    "ps": ("cimg ps against running containers", "running containers", "ms", "ps"),
    "ps-instr": ("cimg ps: instructions (callgrind) against running containers", "running containers", "M instr", "ps-instr"),
    "monitors": ("Private memory of the cimg monitors", "running detached containers", "MiB", "monitors"),
}


def load(path):
    recs, peers, notes, skipped = [], {}, [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if "peer" in r:
                # A peer that ran for one script and not another is reported both ways.
                peers.setdefault(r["peer"], []).append(r)
            elif r.get("bench") == "note":
                notes.append(r["case"])
            elif r.get("bench") == "skipped":
                skipped.append(r["case"])
            else:
                recs.append(r)
    # A part measured again (all.sh --keep) replaces the earlier record of the same comparison.
    last = {}
    for i, r in enumerate(recs):
        last[(r.get("bench"), r.get("case"), r.get("curve"), r.get("x"))] = i
    recs = [r for i, r in enumerate(recs) if last[(r.get("bench"), r.get("case"), r.get("curve"), r.get("x"))] == i]
    return recs, peers, list(dict.fromkeys(notes)), list(dict.fromkeys(skipped))


def fmt(v, unit):
    if unit == "s":
        return "%.2f s" % v
    if unit == "ms":
        return ("%.1f ms" % v) if v >= 10 else ("%.2f ms" % v)
    return "%.1f %s" % (v, unit)


def ratios(rec, a, b):
    t = rec["times"]
    if a not in t or b not in t or len(t[a]) != len(t[b]) or not t[a]:
        return None
    return [x / y for x, y in zip(t[a], t[b])]


def find(recs, bench, prefix):
    out = [r for r in recs if r["bench"] == bench and r.get("case", "").startswith(prefix)]
    return out[-1] if out else None


def table(rec):
    unit, ref = rec["unit"], rec["order"][0]
    cpu = rec.get("cpu", {})
    rows = ["| tool | median | min – max | runs | ratio %s/tool, run by run: median (min – max) | CPU (user+sys) median | CPU ratio |" % ref,
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for n in rec["order"]:
        if n in rec.get("errors", {}):
            rows.append("| %s | failed | | | %s | | |" % (n, rec["errors"][n].replace("|", "/").replace("\n", " ")[:300]))
            continue
        v = rec["times"].get(n)
        if not v:
            continue
        rs = ratios(rec, ref, n) if n != ref else None
        rt = "%.2f (%.2f – %.2f)" % (statistics.median(rs), min(rs), max(rs)) if rs else ""
        c = cpu.get(n)
        cm = fmt(statistics.median(c), unit) if c else ""
        if n in ("docker",) and c:
            cm += " (client only: the work is in dockerd)"
        cr = ""
        if c and n != ref and cpu.get(ref) and n != "docker":
            cr = "%.2f" % (statistics.median(cpu[ref]) / max(statistics.median(c), 1e-9))
        rows.append("| %s | %s | %s – %s | %d | %s | %s | %s |" % (n, fmt(statistics.median(v), unit), fmt(min(v), unit),
                                                                 fmt(max(v), unit), len(v), rt, cm, cr))
    if rec.get("load"):
        rows.append("")
        rows.append("Load average (1 min) during the comparison: %.1f – %.1f." % tuple(rec["load"]))
    return "\n".join(rows)


def curve_data(recs, name):
    pts = {}
    for r in recs:
        if r.get("curve") != name:
            continue
        for tool, v in r["times"].items():
            if v:
                pts.setdefault(tool, []).append((r["x"], statistics.median(v), min(v), max(v)))
        # CPU time beside wall time where it is the command's own (not docker's client).
        for tool, v in r.get("cpu", {}).items():
            if v and tool != "docker" and r.get("unit") in ("s", "ms"):
                pts.setdefault(tool + " CPU", []).append((r["x"], statistics.median(v), min(v), max(v)))
    for tool in pts:
        pts[tool].sort()
    return pts


def shape(points):
    """How the cost grows between the two largest points: the exponent k of y ~ x^k (1: linear;
    near 0: fixed costs dominate; above 1: superlinear), and the least-squares line."""
    if len(points) < 3:
        return "too few points"
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0
    a = my - b * mx
    (x1, y1), (x2, y2) = (xs[-2], ys[-2]), (xs[-1], ys[-1])
    k = math.log(y2 / y1) / math.log(x2 / x1) if y1 > 0 and y2 > 0 and x2 > x1 > 0 else float("nan")
    if k != k:
        verdict = "no verdict"
    elif k < 0.35:
        verdict = "flat at the top (fixed costs dominate)"
    elif k <= 1.25:
        verdict = "linear or below" if k >= 0.75 else "sublinear (fixed costs still weigh)"
    else:
        verdict = "**superlinear**"
    return "%s: between the two largest points the cost grows as x^%.2f; least-squares line %.4g + %.4g per unit" % (
        verdict, k, a, b)


def chart(name, pts, pngdir, logdir):
    title, xl, unit, base = CURVES[name]
    os.makedirs(pngdir, exist_ok=True)
    dat = os.path.join(logdir, name + ".dat")
    tools = sorted(pts, key=lambda t: (not t.startswith("cimg"), t))
    with open(dat, "w") as f:
        for t in tools:
            f.write("# %s\n" % t)
            for x, y, lo, hi in pts[t]:
                f.write("%g %g %g %g\n" % (x, y, lo, hi))
            f.write("\n\n")
    xs = sorted({p[0] for t in tools for p in pts[t]})
    logx = xs and xs[0] > 0 and xs[-1] / xs[0] >= 50
    png = os.path.join(pngdir, base + ".png")
    plots = ", ".join("'%s' index %d using 1:2:3:4 with yerrorlines %stitle '%s'" % (
        dat, i, "dashtype 2 " if t.endswith(" CPU") else "", t) for i, t in enumerate(tools))
    script = "\n".join([
        "set terminal pngcairo size 800,480 font 'sans,10'",
        "set output '%s'" % png,
        "set title '%s'" % title,
        "set xlabel '%s'" % xl,
        "set ylabel '%s (median, bars: min-max; dashed: CPU time)'" % unit,
        "set grid",
        "set key left top",
        "set logscale x" if logx else "",
        "set logscale y" if logx and name in ("pull-size",) else "",
        "plot " + plots,
    ])
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return os.path.relpath(png, os.path.dirname(os.path.dirname(png)))


def main():
    res, machine_p, notes_p, out, pngdir = sys.argv[1:6]
    logdir = sys.argv[6] if len(sys.argv) > 6 else os.path.dirname(res)
    recs, peers, notes, skipped = load(res)
    m = json.load(open(machine_p))
    L = []
    w = L.append
    w("# Benchmarks: cimg beside its peers")
    w("")
    w("Generated by `bash bench/all.sh` (%s, %s). Do not edit the figures by hand: edit "
      "bench/notes.md (the analysis below) or the scripts, and run it again." % (m["date"], m["mode"]))
    w("Every comparison runs in one invocation, alternating cimg and its peers round by round "
      "after a warm-up; this machine is shared and noisy, so **the run-by-run ratios are the "
      "result**, the absolute times only their context.")
    w("")
    w("## The machine")
    w("")
    for k in ("cpu", "cores", "ram", "kernel", "os", "fs", "cgroups", "cimg", "load_before", "load_after"):
        if k in m:
            w("- **%s**: %s" % (k.replace("_", " "), m[k]))
    loads = [x for r in recs if r.get("load") for x in r["load"]]
    if loads:
        w("- **load during the comparisons** (1-min load average sampled after each round): "
          "%.1f – %.1f, median %.1f; each table below gives its own" % (min(loads), max(loads), statistics.median(loads)))
    w("- **stores**: each script works in a loop-mounted ext4 of its own under /var/tmp (see below)")
    w("")
    w("## Peers")
    w("")
    w("| peer | version | runs here | why not / note |")
    w("| --- | --- | --- | --- |")
    for p in sorted(peers):
        rs = peers[p]
        ok = all(r["ok"] for r in rs)
        ver = next((r["version"] for r in rs if r["version"]), "")
        why = "; ".join(sorted({"%s: %s" % (r["script"], r["why"]) for r in rs if not r["ok"]}))
        w("| %s | %s | %s | %s |" % (p, ver, "yes" if ok else ("partly" if any(r["ok"] for r in rs) else "**no**"),
                                     why.replace("|", "/").replace("\n", " ")[:400]))
    for n in notes:
        w("")
        w("Note: " + n)
    w("")
    w("## Speed goals")
    w("")
    w("| goal | figure | verdict |")
    w("| --- | --- | --- |")
    for text, bench, prefix, a, b, limit, kind in GOALS:
        text = text.replace("|", "\\|")
        rec = find(recs, bench, prefix)
        if rec is None:
            w("| %s | not measured in this run | – |" % text)
            continue
        if kind == "abs":
            v = rec["times"].get(a)
            if not v:
                w("| %s | cimg failed | **not met** |" % text)
                continue
            med = statistics.median(v)
            c = rec.get("cpu", {}).get(a)
            cpu = "; CPU (user+sys) median %s" % fmt(statistics.median(c), rec["unit"]) if c else ""
            w("| %s | wall time median %s (min %s)%s | %s |" % (text, fmt(med, rec["unit"]), fmt(min(v), rec["unit"]),
                                                              cpu, "met" if med <= limit else "**not met**"))
            continue
        rs = ratios(rec, a, b)
        if rs is None:
            why = rec.get("errors", {}).get(b, "the peer did not run here (see Peers)")
            w("| %s | no ratio: %s | not measurable here |" % (text, why.replace("|", "/")[:200]))
            continue
        med = statistics.median(rs)
        cpu = rec.get("cpu", {})
        extra = ""
        if cpu.get(a) and cpu.get(b) and b != "docker":
            extra = "; CPU time ratio %.2f" % (statistics.median(cpu[a]) / max(statistics.median(cpu[b]), 1e-9))
        w("| %s | wall-time ratio %.2f (%.2f – %.2f over %d runs)%s | %s |" % (
            text, med, min(rs), max(rs), len(rs), extra, "met" if med <= limit else "**not met**"))
    w("")
    if os.path.exists(notes_p):
        w(open(notes_p).read().rstrip())
        w("")
    w("## Head to head")
    w("")
    for bench, title in (("pull", "Pull into an empty store"), ("push", "Push to an empty registry"),
                         ("run", "run --rm IMAGE /bin/true"),
                         ("build", "Build"), ("images", "images"), ("ps", "ps"), ("load", "load"),
                         ("pull-rss", "Peak memory"), ("run-rss", "Peak memory"),
                         ("memory", "Memory of the per-container processes"),
                         ("load-many", "Loading many images"), ("instructions", "Instructions")):
        rs = [r for r in recs if r["bench"] == bench and not r.get("curve")]
        for r in rs:
            w("### %s: %s" % (title, r.get("case", "")))
            w("")
            w(table(r))
            w("")
    w("## Scaling curves")
    w("")
    for s in skipped:
        w("- skipped: " + s)
    if skipped:
        w("")
    for name in CURVES:
        pts = curve_data(recs, name)
        if not pts:
            continue
        png = chart(name, pts, pngdir, logdir)
        w("### %s" % CURVES[name][0])
        w("")
        w("![%s](%s)" % (CURVES[name][0], png))
        w("")
        unit = CURVES[name][2]
        for tool in sorted(pts, key=lambda t: (not t.startswith("cimg"), t)):
            verdict = shape(pts[tool])
            w("- **%s**: %s. Points: %s." % (tool, verdict, ", ".join(
                "%g → %s" % (x, fmt(y, unit)) for x, y, *_ in pts[tool])))
        w("")
    for name in sorted({r["curve"] for r in recs if r.get("curve")} - set(CURVES) - {None}):
        w("- curve %s was measured but has no chart definition" % name)
    logs = sorted(f for f in os.listdir(logdir) if f.endswith(".out")) if os.path.isdir(logdir) else []
    if "lifecycle.out" in logs:
        w("## Lifecycle (bench/lifecycle.sh, its own output)")
        w("")
        w("```")
        w(open(os.path.join(logdir, "lifecycle.out")).read().rstrip())
        w("```")
        w("")
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
