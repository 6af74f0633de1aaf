#!/usr/bin/env python3
"""A plain http listener that records every request it gets and answers it.

    recorder.py PORT LOG [REDIRECT_URL]

With TLS_CERT and TLS_KEY in the environment (PEM files) it speaks https instead.

Each request's method, path and headers go to LOG (one block per request, flushed at
once). With REDIRECT_URL it answers 302 to REDIRECT_URL + the request's path; without, a
slurmrestd-like error answer (HTTP 500 with an `errors` array).
"""
import http.server
import json
import os
import ssl
import sys

port, log = int(sys.argv[1]), sys.argv[2]
redirect = sys.argv[3] if len(sys.argv) > 3 else None


class Handler(http.server.BaseHTTPRequestHandler):
    def handle_one(self):
        with open(log, "a") as f:
            f.write(f"{self.command} {self.path}\n{self.headers}\n")
            f.flush()
        if redirect:
            self.send_response(302)
            self.send_header("Location", redirect + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"errors": [{"error": "recorder", "error_number": 1}]}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = handle_one

    def log_message(self, *args):
        pass


open(log, "a").close()
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
if os.environ.get("TLS_CERT"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
