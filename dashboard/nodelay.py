"""Answers on a kept-alive connection leave at once, not 40 ms later.

Streamlit 1.67 binds its listening socket itself (``socket.socket(family)``),
so the socket's protocol number is 0, and asyncio sets ``TCP_NODELAY`` only on
accepted sockets whose protocol is ``IPPROTO_TCP``: every connection keeps
Nagle's algorithm. uvicorn writes a response's head and body separately, so on
a kept-alive connection the body waits for the client's delayed ACK of the
head: about 40 ms on every request after the first (measured here:
``/_stcore/health`` 44 ms, an API page of 10,000 runs 52 ms for 9 ms of work).

Linux and macOS copy ``TCP_NODELAY`` from a listening socket to the
connections it accepts, so setting it once on the listening socket, which
exists when uvicorn imports the app and before it accepts anything, covers
every connection. The socket is found among this process's descriptors by
its port; nothing of Streamlit's is patched.
"""

from __future__ import annotations

import logging
import os
import socket
import stat

log = logging.getLogger(__name__)

DESCRIPTORS = "/dev/fd"  # Linux (a link to /proc/self/fd) and macOS


def send_small_writes_at_once(port: int) -> int:
    """Set ``TCP_NODELAY`` on this process's TCP sockets listening on ``port``; how many there were."""
    changed = 0
    for fd in _socket_descriptors():
        try:
            sock = socket.socket(fileno=fd)  # family, type and protocol are read from the descriptor
        except OSError:
            continue
        try:
            if _listens_on(sock, port):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                changed += 1
        except OSError as exc:
            log.debug("nodelay: descriptor %d left as it is: %s", fd, exc)
        finally:
            sock.detach()  # the descriptor stays open: it is the server's
    return changed


def _socket_descriptors() -> list[int]:
    try:
        names = os.listdir(DESCRIPTORS)
    except OSError:
        return []
    found = []
    for name in names:
        try:
            fd = int(name)
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                found.append(fd)
        except (ValueError, OSError):  # the listing's own descriptor is closed by now
            continue
    return found


def _listens_on(sock: socket.socket, port: int) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return False
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return False
    return sock.getsockname()[1] == port
