#!/usr/bin/env python3
"""Opens N keep-alive connections to an HTTP server, sends one
`GET /bytes/128` on each and reads the answer, then keeps them all open
and idle for SECONDS (for measuring the server's memory with mostly idle
connections, while another client such as wrk loads a few more):

    bin/idle-connections.py HOST:PORT N SECONDS
"""
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
n, secs = int(sys.argv[2]), float(sys.argv[3])
conns = []
for i in range(n):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /bytes/128 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"\r\n\r\n" + b"abcdefghijklmnopqrstuvwxyz" * 4 + b"abcdefghijklmnopqrstuvwx"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(f"connection {i} closed before its answer")
        got += chunk
    conns.append(s)
print(f"{n} connections open and idle", flush=True)
time.sleep(secs)
