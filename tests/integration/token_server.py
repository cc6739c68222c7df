#!/usr/bin/env python3
"""A Bearer-token front for a loopback docker-registry (stdlib only, 127.0.0.1 only).

GET /token?service=S&scope=repository:NAME:ACTIONS… checks Basic credentials (--user,
--password) and hands out a random token for the scopes asked for (pull only for anonymous
callers with --anonymous-pull); the answer carries it as "token" or "access_token"
(--token-field). Every /v2/ request must bear a token whose scopes cover the repository and
the action (pull for GET/HEAD, push otherwise), else it gets 401 with a WWW-Authenticate
challenge naming this server's /token as realm. A token stops working after --max-uses
requests (to test that the client fetches a fresh one), and --expires-in seconds after it
was issued (the answer says so with expires_in and issued_at). Authorised requests are
forwarded to --upstream. Token requests are logged to --log as "TOKEN user=U scopes=S1 S2",
requests with an expired token as "EXPIRED METHOD PATH age=SECONDS". The server exits by
itself after --lifetime seconds.
"""
import argparse
import base64
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_proxy  # noqa: E402

REPO_RE = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags)/")


class Handler(fault_proxy.Handler):
    opts = None
    tokens = {}
    lock = threading.Lock()

    def _token_log(self, line):
        with self.lock, open(self.opts.log, "a") as f:
            f.write(line + "\n")

    def _unauthorized(self, scope, error=None):
        ch = 'Bearer realm="http://127.0.0.1:%d/token",service="cimg-test"' % self.opts.port
        if scope:
            ch += ',scope="%s"' % scope
        if error:
            ch += ',error="%s"' % error
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                       "message": "authentication required"}]}).encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(401)
        self.send_header("WWW-Authenticate", ch)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _basic_user(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
        except ValueError:
            return False
        if user == self.opts.user and pw == self.opts.password:
            return user
        return False

    def _token(self):
        q = urllib.parse.urlparse(self.path).query
        params = urllib.parse.parse_qs(q)
        user = self._basic_user()
        if user is False or (user is None and not self.opts.anonymous_pull):
            self._token_log("TOKEN refused")
            body = b'{"details":"incorrect username or password"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        scopes = []
        for s in params.get("scope", []):
            scopes.extend(s.split(" "))
        granted = {}
        for s in scopes:
            parts = s.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            actions = set(parts[2].split(","))
            if user is None:
                actions &= {"pull"}
            granted.setdefault(parts[1], set()).update(actions)
        tok = secrets.token_hex(16)
        with self.lock:
            self.tokens[tok] = {"scopes": granted, "uses": 0, "issued": time.monotonic()}
        self._token_log("TOKEN user=%s service=%s scopes=%s" % (
            user or "-", ",".join(params.get("service", [])), " ".join(scopes)))
        now = time.time()
        issued_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + \
            ".%03dZ" % int((now % 1) * 1000)
        body = json.dumps({self.opts.token_field: tok, "expires_in": self.opts.expires_in,
                           "issued_at": issued_at}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        path = urllib.parse.urlparse(self.path).path
        if path == "/healthz":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/token":
            self._token()
            return
        m = REPO_RE.match(path)
        repo = m.group(1) if m else None
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        scope = "repository:%s:%s" % (repo, "pull" if action == "pull" else "pull,push") \
            if repo else None
        h = self.headers.get("Authorization", "")
        tok = h[7:] if h.startswith("Bearer ") else None
        with self.lock:
            t = self.tokens.get(tok) if tok else None
            age = time.monotonic() - t["issued"] if t is not None else 0
            too_old = t is not None and age >= self.opts.expires_in
            expired = t is not None and (t["uses"] >= self.opts.max_uses or too_old)
            ok = t is not None and not expired and (
                repo is None or action in t["scopes"].get(repo, set()))
            if ok:
                t["uses"] += 1
        if too_old:
            self._token_log("EXPIRED %s %s age=%.2f" % (self.command, path, age))
        if not ok:
            self._unauthorized(scope, "invalid_token" if expired else None)
            return
        self.forward()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--token-field", default="token", choices=["token", "access_token"])
    ap.add_argument("--max-uses", type=int, default=1000000)
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--anonymous-pull", action="store_true")
    ap.add_argument("--lifetime", type=float, default=600)
    a = ap.parse_args()
    Handler.opts = a
    Handler.state = fault_proxy.State(a.upstream, "/nonexistent", os.devnull)
    fault_proxy.serve(Handler, a.port, a.lifetime)


if __name__ == "__main__":
    main()
