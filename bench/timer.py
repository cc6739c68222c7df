#!/usr/bin/env python3
"""Alternating timer for bench/*.sh.

Reads one comparison as JSON on stdin:
  {"bench": "pull", "case": "1 layer, 95 MB gzip", "unit": "s", "runs": 5, "warmup": 1,
   "curve": "pull-size", "x": 100,                         (optional: a point of a curve)
   "contenders": [{"name": "cimg", "cmd": [...] | "sh text", "prep": "sh text",
                   "post": "sh text"}, ...]}
The first contender is the reference (cimg). After `warmup` rounds that are thrown away, each
round runs every contender once, in turn, so that a load spike on this shared machine hits all
of them alike; the ratio cimg/peer is taken round by round. `prep` and `post` run untimed
before and after each timed command (emptying a store, unmounting); in an argv "cmd", {seq}
becomes a number unique to the run (runc's container IDs). A contender that fails is
dropped from the comparison and its error kept in the record, never silently.

Prints a summary and appends one JSON line to $BENCH_RESULTS (when set).
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def sh(text):
    return subprocess.run(["bash", "-c", text], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


_seq = 0


def timed(cmd):
    global _seq
    _seq += 1
    argv = [a.replace("{seq}", str(_seq)) for a in cmd] if isinstance(cmd, list) \
        else ["bash", "-c", cmd]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    t1 = time.perf_counter_ns()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # user+sys of the whole process tree (what a daemon does for it is not in it).
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return (t1 - t0) / 1e9, cpu, p


def fmt(v, unit):
    if unit == "ms":
        return "%.2f ms" % v
    if unit == "s":
        return "%.3f s" % v
    return "%.2f %s" % (v, unit)


def main():
    spec = json.load(sys.stdin)
    unit = spec.get("unit", "s")
    scale = 1000.0 if unit == "ms" else 1.0
    runs, warmup = int(spec.get("runs", 5)), int(spec.get("warmup", 1))
    alive = [c["name"] for c in spec["contenders"]]
    by_name = {c["name"]: c for c in spec["contenders"]}
    times = {n: [] for n in alive}
    cpus = {n: [] for n in alive}
    errors = {}
    loads = []
    for r in range(warmup + runs):
        for name in list(alive):
            c = by_name[name]
            if c.get("prep"):
                p = sh(c["prep"])
                if p.returncode != 0:
                    errors[name] = "prep failed: " + p.stderr.strip()[-400:]
                    alive.remove(name)
                    continue
            dt, cpu, p = timed(c["cmd"])
            if c.get("post"):
                sh(c["post"])
            if p.returncode != 0:
                errors[name] = "exit %d: %s" % (p.returncode, p.stderr.strip()[-400:])
                alive.remove(name)
                continue
            if r >= warmup:
                times[name].append(dt * scale)
                cpus[name].append(cpu * scale)
        loads.append(os.getloadavg()[0])
        if not alive or alive[0] != spec["contenders"][0]["name"]:
            break
    rec = {k: spec[k] for k in ("bench", "case", "curve", "x", "note") if k in spec}
    rec.update(unit=unit, runs=runs, warmup=warmup, order=[c["name"] for c in spec["contenders"]],
               times={n: v for n, v in times.items() if v and n not in errors},
               cpu={n: v for n, v in cpus.items() if v and n not in errors}, errors=errors,
               load=[min(loads), max(loads)] if loads else None)
    ref = rec["order"][0]
    head = "%s: %s" % (spec["bench"], spec.get("case", ""))
    print(head)
    for n in rec["order"]:
        if n in errors:
            print("  %-18s FAILED (%s)" % (n, errors[n][:200]))
            continue
        v = times[n]
        if not v:
            continue
        line = "  %-18s median %s  (min %s, max %s, %d runs; cpu %s)" % (
            n, fmt(statistics.median(v), unit), fmt(min(v), unit), fmt(max(v), unit), len(v),
            fmt(statistics.median(cpus[n]), unit))
        if n != ref and ref in rec["times"] and len(rec["times"][ref]) == len(v):
            rs = [a / b for a, b in zip(rec["times"][ref], v)]
            line += "  %s/%s = %.2f (%.2f-%.2f)" % (ref, n, statistics.median(rs), min(rs), max(rs))
        print(line)
    out = os.environ.get("BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
    sys.stdout.flush()
    return 1 if ref in errors else 0


if __name__ == "__main__":
    sys.exit(main())
