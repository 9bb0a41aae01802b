"""The simulated camera's TCP side: listens like a Milesight LPR camera's LPR port.

It checks the login (401 and a close for a wrong password), answers the
registration and remembers which features each client registered (JSON posts
go only to clients that asked for them, as a camera does), then pushes what
it is told to. Fault modes let tests and demos misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PayloadError
from ..log import get_logger
from ..protocol.tcp import (
    COMM_ATTRIBUTES_POST,
    COMM_COUNTING_POST,
    COMM_LIST_EVENT_POST,
    COMM_LOGIN_REPLY,
    COMM_LOGIN_REQ,
    COMM_PARKING_POST,
    COMM_REGISTE_REPLY,
    COMM_REGISTE_REQ,
    COMM_VIOLATION_POST,
    Packet,
    PacketDecoder,
    encode_packet,
    encode_recognition,
)
from ..protocol.values import lenient_json
from .script import Read

__all__ = ["TcpCameraServer", "TcpFaults"]

# Which registration key a JSON post needs (COMM_REGISTER_REQ "Data Content").
_POST_FEATURE: Mapping[int, str] = {
    COMM_PARKING_POST: "lprparking",
    COMM_COUNTING_POST: "vehiclecount",
    COMM_LIST_EVENT_POST: "listevent",
    COMM_ATTRIBUTES_POST: "attributesevent",
    COMM_VIOLATION_POST: "violationevent",
}


@dataclass
class TcpFaults:
    """Misbehaviour, switched on by tests: each applies to new connections or next sends."""

    never_answer_login: bool = False
    no_register_reply: bool = False
    # The next send writes this many bytes of the packet, then drops the connection.
    cut_next_send_at: int | None = None
    refuse_connections: bool = False


@dataclass(eq=False)
class _Client:
    writer: asyncio.StreamWriter
    registered: set[str] = field(default_factory=set)
    register_all: bool = False

    def wants(self, command: int) -> bool:
        feature = _POST_FEATURE.get(command)
        return feature is None or self.register_all or feature in self.registered


class TcpCameraServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "sim-password",
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.faults = TcpFaults()
        self.clients: list[_Client] = []
        self.logins = 0
        self.rejected_logins = 0
        self._server: asyncio.Server | None = None
        self._client_added = asyncio.Condition()
        self._log = get_logger("lprmeta.simulator.tcp")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            client.writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self.clients.clear()

    async def wait_for_clients(self, n: int = 1, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._client_added:
            await self._client_added.wait_for(lambda: len(self.clients) >= n)

    # ------------------------------------------------------------ sending

    async def send_packet(self, data: bytes, *, command: int | None = None) -> int:
        """Push raw packet bytes to every registered client; returns how many got it."""
        sent = 0
        for client in list(self.clients):
            if command is not None and not client.wants(command):
                continue
            cut = self.faults.cut_next_send_at
            try:
                if cut is not None:
                    self.faults.cut_next_send_at = None
                    client.writer.write(data[:cut])
                    await client.writer.drain()
                    self._drop(client)
                    continue
                client.writer.write(data)
                await client.writer.drain()
                sent += 1
            except (ConnectionError, OSError):
                self._drop(client)
        return sent

    async def send_read(self, read: Read) -> int:
        return await self.send_packet(encode_recognition(read.recognition()))

    async def send_post(self, command: int, body: Mapping[str, Any]) -> int:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return await self.send_packet(encode_packet(command, data), command=command)

    async def drop_all(self) -> None:
        for client in list(self.clients):
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
        client.writer.close()

    # ------------------------------------------------------------ serving

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.faults.refuse_connections:
            writer.close()
            return
        decoder = PacketDecoder(max_size=1024 * 1024)
        client = _Client(writer)
        logged_in = False
        try:
            while data := await reader.read(65536):
                decoder.feed(data)
                for item in decoder:
                    if not isinstance(item, Packet):
                        continue
                    if item.command == COMM_LOGIN_REQ:
                        logged_in = await self._login(item, writer)
                        if not logged_in:
                            return
                    elif item.command == COMM_REGISTE_REQ and logged_in:
                        await self._register(item, client)
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            if client in self.clients:
                self.clients.remove(client)
            writer.close()

    async def _login(self, packet: Packet, writer: asyncio.StreamWriter) -> bool:
        if self.faults.never_answer_login:
            return True  # keep the connection, say nothing
        try:
            body = lenient_json(packet.data)
        except PayloadError:
            body = {}
        ok = (
            isinstance(body, dict)
            and body.get("id") == self.username
            and body.get("password") == self.password
        )
        result = "200" if ok else "401"
        writer.write(encode_packet(COMM_LOGIN_REPLY, json.dumps({"result": result}).encode()))
        await writer.drain()
        if ok:
            self.logins += 1
        else:
            self.rejected_logins += 1
        return ok

    async def _register(self, packet: Packet, client: _Client) -> None:
        try:
            body = lenient_json(packet.data)
        except PayloadError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        client.register_all = body.get("registerAll") == 1
        client.registered = {k for k, v in body.items() if v == 1 and k != "registerAll"}
        if not self.faults.no_register_reply:
            reply = {"result": "200", "registerAll": 1 if client.register_all else 0}
            client.writer.write(encode_packet(COMM_REGISTE_REPLY, json.dumps(reply).encode()))
            await client.writer.drain()
        async with self._client_added:
            self.clients.append(client)
            self._client_added.notify_all()
