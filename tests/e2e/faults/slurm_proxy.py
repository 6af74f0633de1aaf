#!/usr/bin/env python3
"""A slurmrestd in front of slurmrestd that holds up job submits: the fault of a submit
whose answer is lost (the client gives up after its 5 s timeout, the job is made anyway).

    slurm_proxy.py LISTEN_PORT UPSTREAM_URL [DELAY_S] [MATCH]

Every request is forwarded to UPSTREAM_URL as is. A POST to .../job/submit whose body
contains MATCH (default: every one) is held DELAY_S seconds (default 7) before it is
forwarded: the batch job is made after the client gave up, and its answer goes nowhere.
Each held submit is logged to stderr.
"""
import http.client
import http.server
import sys
import time
import urllib.parse

PORT = int(sys.argv[1])
UPSTREAM = urllib.parse.urlsplit(sys.argv[2])
DELAY = float(sys.argv[3]) if len(sys.argv) > 3 else 7.0
MATCH = sys.argv[4].encode() if len(sys.argv) > 4 else b""


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "POST" and self.path.endswith("/job/submit") and MATCH in (body or b""):
            sys.stderr.write(f"holding a submit for {DELAY} s\n")
            sys.stderr.flush()
            time.sleep(DELAY)
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError as e:
            self.send_error(502, f"upstream: {e}")
            return
        finally:
            upstream.close()
        try:
            self.send_response(answer.status)
            for k, v in answer.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up: its answer is lost, which is the point

    do_GET = do_POST = do_DELETE = forward

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Proxy).serve_forever()
