#!/usr/bin/env python3
"""Serve the local Debian mirror built by tests/debian/build-media.sh to a guest, on loopback only.

Usage: mirror-server.py ROOT [--port N] [--log FILE] [--record UPSTREAM]

ROOT is the directory holding debian/ (the mirror root: debian/dists, debian/pool). Binds
127.0.0.1 only; the guest reaches it through QEMU's guestfwd. Every request is appended to
--log as one line "STATUS SIZE PATH" (the e2e test checks that the installer found everything
and reads the list of files it fetched).

--record UPSTREAM is for maintainers refreshing tests/debian/mirror.list, never for tests: a
pool file missing under ROOT is fetched from UPSTREAM (a Debian mirror URL ending in /debian),
stored and served, so one install records exactly what it needs (indexes are never filled in:
they must match the signed Release of the mirror). The guest still talks only to this server.

Prints "LISTENING <port>" on stdout once bound; stops on SIGTERM/SIGINT.
"""
import argparse
import http.server
import os
import shutil
import signal
import sys
import threading
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--record")
    args = ap.parse_args()
    root = os.path.realpath(args.root)
    log_lock = threading.Lock()
    log = open(args.log, "a", buffering=1) if args.log else None

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)

        def log_message(self, fmt, *a):  # the request log below replaces stderr chatter
            pass

        def send_response(self, code, message=None):
            self._status = code
            super().send_response(code, message)

        def fill(self):
            rel = self.path.split("?", 1)[0].lstrip("/")
            if not args.record or ".." in rel.split("/") or not rel.startswith("debian/pool/"):
                return
            dest = os.path.join(root, rel)
            if os.path.exists(dest) or rel.endswith("/"):
                return
            url = args.record.rstrip("/") + "/" + rel[len("debian/"):]
            try:
                with urllib.request.urlopen(url, timeout=60) as r:
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    tmp = dest + ".part"
                    with open(tmp, "wb") as f:
                        shutil.copyfileobj(r, f)
                    os.replace(tmp, dest)
            except Exception as e:  # a 404 upstream stays a 404 here
                print(f"record: {url}: {e}", file=sys.stderr)

        def do_GET(self):
            self.fill()
            self._status = 0
            super().do_GET()
            self.note()

        def do_HEAD(self):
            self.fill()
            self._status = 0
            super().do_HEAD()
            self.note()

        def note(self):
            if log:
                size = "-"
                p = self.translate_path(self.path)
                if os.path.isfile(p):
                    size = str(os.path.getsize(p))
                with log_lock:
                    log.write(f"{self._status} {size} {self.command} {self.path}\n")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print(f"LISTENING {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.server_close()


if __name__ == "__main__":
    main()
