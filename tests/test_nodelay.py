"""``dashboard.nodelay``: the served listening socket hands TCP_NODELAY to every connection it accepts.

Without it a kept-alive API client waits 40 ms per answer for its own delayed ACK (bench_api.py shows
the latency); these tests check the socket options themselves, on sockets bound as Streamlit binds them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from driftboard.dashboard.nodelay import send_small_writes_at_once


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A listening socket made as Streamlit 1.67 makes its own: protocol number 0."""
    sock = socket.socket(family=socket.AF_INET)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def accepted_nodelay(server: socket.socket) -> int:
    with socket.create_connection(server.getsockname()[:2]):
        conn, _ = server.accept()
        with conn:
            return conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_connections_accepted_afterwards_send_at_once(listening: socket.socket) -> None:
    assert accepted_nodelay(listening) == 0  # what asyncio leaves them with, as the module says
    assert send_small_writes_at_once(listening.getsockname()[1]) == 1
    assert accepted_nodelay(listening) == 1


def test_the_server_keeps_its_socket_open(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    send_small_writes_at_once(port)
    assert listening.fileno() >= 0 and listening.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    assert send_small_writes_at_once(port) == 1  # the descriptor is still there to find


def test_other_ports_and_connected_sockets_are_left_alone(listening: socket.socket) -> None:
    other = socket.socket(family=socket.AF_INET)
    other.bind(("127.0.0.1", 0))
    other.listen()
    with other, socket.create_connection(listening.getsockname()[:2]) as client:
        conn, _ = listening.accept()
        with conn:
            assert send_small_writes_at_once(client.getsockname()[1]) == 0  # a client's port: not listening
            assert send_small_writes_at_once(listening.getsockname()[1]) == 1
            assert other.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # accepted before: unchanged


def test_no_listening_socket_changes_nothing() -> None:
    with socket.socket(family=socket.AF_INET) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert send_small_writes_at_once(free) == 0
