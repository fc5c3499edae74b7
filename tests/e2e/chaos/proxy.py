"""A loopback TCP proxy between the operator and the API server, for chaos: `partition()` resets
every connection and every new one until `heal()`; it counts the connections clients open, so a
test can tell how hard the operator knocks while the API server is out of reach."""

from __future__ import annotations

import socket
import struct
import threading
import time


def reset(sock: socket.socket) -> None:
    """Close at once: shutdown first, or a pump thread blocked in recv() on it would keep the
    connection open; linger 0, so the close is a RST, as a dropped path looks to the other end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Proxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.partitioned = False
        self.accepted: list[float] = []  # monotonic time of every connection a client opened
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def partition(self) -> None:
        with self._lock:
            self.partitioned = True
            doomed, self._open = self._open, set()
        for sock in doomed:
            reset(sock)

    def heal(self) -> None:
        with self._lock:
            self.partitioned = False

    def connections_between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t in self.accepted)

    def close(self) -> None:
        self.partition()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        if self.partitioned:
            reset(client)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            reset(client)  # the API server is down: the client sees its connection dropped
            return
        server.settimeout(None)
        with self._lock:
            if self.partitioned:
                reset(client)
                reset(server)
                return
            self._open |= {client, server}
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            reset(src)
            reset(dst)
