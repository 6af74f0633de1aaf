#!/usr/bin/env python3
"""A blackholed apiserver: accepts TCP connections on 127.0.0.1:PORT and never answers
(no TLS handshake, no bytes), holding each connection open until the peer gives up.

    blackhole.py PORT
"""
import socket
import sys
import threading


def hold(conn: socket.socket) -> None:
    # Read and drop whatever comes, never write: the peer waits for an answer forever.
    with conn:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


def main() -> None:
    port = int(sys.argv[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        while True:
            conn, _ = s.accept()
            threading.Thread(target=hold, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
