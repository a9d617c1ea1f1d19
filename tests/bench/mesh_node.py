#!/usr/bin/env python3
"""One node of tests/bench/mesh_bound.sh: plain TCP streams of zeros, no BitTorrent.

  mesh_node.py recv IP PORT EXPECT_BYTES   accept connections until EXPECT_BYTES have arrived in
                                           all of them together; print the epoch time (s) then
  mesh_node.py send BYTES IP:PORT...       send BYTES to each address at once, one thread each
MESH_RCVBUF (bytes, default 32768 as gapsync's data plane; 0 = the kernel's autotuning): SO_RCVBUF
of the receiving sockets.
"""
import os
import socket
import sys
import threading
import time


def recv(ip, port, expect):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rcvbuf = int(os.environ.get("MESH_RCVBUF", "32768"))
    if rcvbuf > 0:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # accepted sockets inherit it
    srv.bind((ip, port))
    srv.listen(64)
    lock = threading.Lock()
    state = {"got": 0, "done": None}
    finished = threading.Event()

    def serve(conn):
        buf = bytearray(1 << 16)
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            with lock:
                state["got"] += n
                if state["got"] >= expect and state["done"] is None:
                    state["done"] = time.time()
                    finished.set()
        conn.close()

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    finished.wait()
    print(f"{state['done']:.3f}", flush=True)


def send(nbytes, targets):
    chunk = bytes(1 << 16)

    def one(target):
        host, port = target.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        left = nbytes
        while left > 0:
            n = min(left, len(chunk))
            s.sendall(chunk[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        s.close()

    threads = [threading.Thread(target=one, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "recv":
        recv(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "send":
        send(int(sys.argv[2]), sys.argv[3:])
    else:
        sys.exit(__doc__)
