"""Run IDs stay uuid4 strings though made from batched random bytes; a corked batch is held and then released."""

from __future__ import annotations

import socket
import uuid

import pytest

from workpath_operator.service import corking, runs


def test_run_ids_are_distinct_version_4_uuid_strings() -> None:
    ids = [runs.new_run_id() for _ in range(1000)]  # several 4 KiB batches
    assert len(set(ids)) == len(ids)
    for run_id in ids:
        parsed = uuid.UUID(run_id)
        assert str(parsed) == run_id
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


class _Connection:
    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.sock if name == "socket" else default


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")
def test_a_batch_is_corked_while_written_and_uncorked_after() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as sock:
        with corking.corked(_Connection(sock)):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0


def test_a_connection_without_a_socket_is_written_uncorked() -> None:
    with corking.corked(_Connection(None)), corking.corked(object()):
        pass
