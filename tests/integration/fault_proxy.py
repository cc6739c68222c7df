#!/usr/bin/env python3
"""A fault-injecting reverse proxy for the registry tests (stdlib only, 127.0.0.1 only).

Forwards every request to --upstream (a docker-registry), except that the rules of --rules (a
JSON file, re-read on every request so that a test can change it between commands) inject
faults. A rule is {"path": SUBSTRING, "method": "GET", "skip": K, "times": N, "action": ACTION}
and applies to the first N matching requests (every one when N is absent) after the first K
(none when K is absent), which pass untouched. Actions:

  "status:CODE[:RETRY_AFTER]"  answer CODE with a registry error body (and Retry-After)
  "cut:N"                      send the headers and only N bytes of the body, then close
  "ignore-range"               drop the Range header (the upstream answers 200, whole body)
  "bad-range"                  on a Range request, send the whole body as a 206 from byte 0
  "corrupt"                    flip bytes of the body (same length)
  "slow:BYTES_PER_SECOND"      send the body slowly (for a test that kills the client)
  "trickle:BYTES:SECONDS"      send BYTES of the body every SECONDS (a stalling server)
  "length:+K" / "length:-K"    announce a Content-Length K bytes longer / shorter than the
                               body, send the whole body, then close the connection
  "big:N"                      answer 200 with N bytes of padded JSON instead of the body
  "redirect-loop"              answer 307 to the same path with a new query, forever
  "delay:SECONDS"              wait before forwarding (to make an operation last)
  "drop-response"              forward the request (the upstream acts on it), then close the
                               connection without an answer (a response lost on the way)

Each request is logged to --log as "METHOD PATH range=R action=A t=SECONDS" (Range, monotonic
time), with " crange=C" after R when the request has a Content-Range (chunked uploads). The
server exits by itself after --lifetime seconds.
"""
import argparse
import http.client
import http.server
import json
import os
import socket
import threading
import time

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


class State:
    def __init__(self, upstream, rules, log):
        self.upstream = upstream
        self.rules = rules
        self.log = log
        self.lock = threading.Lock()
        self.counts = {}


def pick_action(state, method, path):
    """The action of the first rule matching this request that still has uses left."""
    try:
        # Counts start afresh whenever the test rewrites the file (a new case).
        version = os.stat(state.rules).st_mtime_ns
        with open(state.rules) as f:
            rules = json.load(f)
    except (OSError, ValueError):
        version, rules = 0, []
    with state.lock:
        for i, r in enumerate(rules):
            if r.get("method", method) != method or r.get("path", "") not in path:
                continue
            key = (version, i)
            used = state.counts.get(key, 0)
            state.counts[key] = used + 1
            skip = r.get("skip", 0)
            if used < skip:
                continue
            if "times" in r and used - skip >= r["times"]:
                continue
            return r["action"]
    return ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        pass

    def _log(self, action):
        with self.state.lock, open(self.state.log, "a") as f:
            crange = self.headers.get("Content-Range")
            f.write("%s %s range=%s%s action=%s t=%.3f\n" % (
                self.command, self.path, self.headers.get("Range", "-"),
                " crange=" + crange if crange else "", action or "-", time.monotonic()))

    def _error(self, code, retry_after=None):
        body = json.dumps({"errors": [{"code": "INJECTED", "message": "injected %d" % code}]})
        body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(body)

    def _big(self, n):
        head = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "pad": "'
        tail = b'"}'
        body = head + b"x" * max(0, n - len(head) - len(tail)) + tail
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def forward(self, action="", extra_headers=None, intercept=None):
        """Send the request upstream; stream the answer back, applying action."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers.update(extra_headers or {})
        asked_range = headers.get("Range")
        if action in ("ignore-range", "bad-range"):
            headers.pop("Range", None)
        conn = http.client.HTTPConnection(self.state.upstream, timeout=60)
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        if action == "drop-response":
            resp.read()
            conn.close()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        data_len = resp.getheader("Content-Length")
        status = resp.status
        out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
        if intercept:
            status, out_headers = intercept(status, out_headers)
        if action == "bad-range" and asked_range and status == 200 and data_len:
            status = 206
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-range"]
            out_headers.append(("Content-Range", "bytes 0-%d/%s" % (int(data_len) - 1, data_len)))
        self.send_response(status)
        for k, v in out_headers:
            if k.lower() not in ("content-length", "date", "server"):
                self.send_header(k, v)
        if data_len is not None and action.startswith("length:"):
            self.send_header("Content-Length", str(max(0, int(data_len) + int(action[7:]))))
            self.close_connection = True
        elif data_len is not None:
            self.send_header("Content-Length", data_len)
        else:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if self.command == "HEAD" or data_len is None:
            conn.close()
            return
        remaining = int(data_len)
        cut = int(action.split(":")[1]) if action.startswith("cut:") else -1
        rate = int(action.split(":")[1]) if action.startswith("slow:") else 0
        trickle = (0, 0.0)
        if action.startswith("trickle:"):
            trickle = (int(action.split(":")[1]), float(action.split(":")[2]))
        sent = 0
        flipped = False
        while remaining > 0:
            chunk = resp.read(min(trickle[0] or (16384 if rate else 65536), remaining))
            if rate:
                time.sleep(len(chunk) / rate)
            if trickle[0]:
                time.sleep(trickle[1])
            if not chunk:
                break
            remaining -= len(chunk)
            if action == "corrupt" and not flipped and len(chunk) > 32:
                mid = len(chunk) // 2
                chunk = chunk[:mid] + bytes(b ^ 0xFF for b in chunk[mid:mid + 16]) + chunk[mid + 16:]
                flipped = True
            if cut >= 0 and sent + len(chunk) >= cut:
                self.wfile.write(chunk[:cut - sent])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
                return
            try:
                self.wfile.write(chunk)
                if rate or trickle[0]:
                    self.wfile.flush()
            except OSError:
                break
            sent += len(chunk)
        conn.close()
        if action.startswith("length:"):
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_any(self):
        if self.path == "/healthz":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        action = pick_action(self.state, self.command, self.path)
        self._log(action)
        if action.startswith("status:"):
            parts = action.split(":")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._error(int(parts[1]), parts[2] if len(parts) > 2 else None)
            return
        if action.startswith("big:"):
            self._big(int(action.split(":")[1]))
            return
        if action == "redirect-loop":
            n = int(self.path.rsplit("loop=", 1)[1]) + 1 if "loop=" in self.path else 1
            base = self.path.split("?", 1)[0]
            self.send_response(307)
            self.send_header("Location", "%s?loop=%d" % (base, n))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if action.startswith("delay:"):
            time.sleep(float(action.split(":")[1]))
        self.forward(action)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def serve(handler_cls, port, lifetime):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler_cls)
    srv.daemon_threads = True
    timer = threading.Timer(lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=600)
    a = ap.parse_args()
    Handler.state = State(a.upstream, a.rules, a.log)
    serve(Handler, a.port, a.lifetime)


if __name__ == "__main__":
    main()
