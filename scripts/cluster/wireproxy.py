"""A MongoDB wire-protocol pass-through that can pause an instance right
after one chosen step.

The drills need to pause an instance *between two steps* of a lifecycle
operation, every run at the same step. Polling the database and sending
SIGSTOP when a step shows up is a race (a create takes milliseconds), so the
paused instance talks to the stand-in through this proxy instead: it forwards
every message unchanged, and when armed with a `HoldRule` it lets the
matching command (e.g. "the claim of the documents of org_x") reach the
server and then holds the server's *reply* until released. The drill
SIGSTOPs the instance while the reply is held, so the instance is frozen
exactly after that step took effect and before it sends anything else
(lease renewals included), as if the process had been stopped there; after
SIGCONT the reply is delivered and the instance carries on.

(Holding the *next command* instead would model a command delayed in the
network past a takeover, which no lease can fence: not the scenario.)

Only OP_MSG (opcode 2013) commands are inspected; everything passes through.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable

import bson

OP_MSG = 2013


@dataclass
class Command:
    """One decoded OP_MSG command."""

    name: str
    target: object  # usually the collection name
    db: str
    body: dict
    sequences: dict[str, list[dict]]

    def documents(self) -> list[dict]:
        """The documents/statements it carries (insert documents, update or
        delete statements), wherever the driver put them."""
        out: list[dict] = []
        for key in ("documents", "updates", "deletes"):
            out.extend(self.body.get(key) or [])
            out.extend(self.sequences.get(key) or [])
        return out


@dataclass
class Match:
    """Which commands a rule looks at."""

    name: str
    target: str | None = None
    db: str | None = None
    predicate: Callable[[Command], bool] | None = None

    def __call__(self, command: Command) -> bool:
        return (
            command.name == self.name
            and (self.target is None or command.target == self.target)
            and (self.db is None or command.db == self.db)
            and (self.predicate is None or self.predicate(command))
        )


@dataclass
class HoldRule:
    """Hold the reply to the `nth` command matching `target` (counted once
    `after`, if given, has been seen) until `release` is set."""

    target: Match
    nth: int = 1
    after: Match | None = None
    max_hold_secs: float = 180.0
    seen_after: bool = False
    count: int = 0
    fired: bool = False
    request_id: int | None = None  # of the command whose reply is held
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held_command: Command | None = None


class WireProxy:
    """Listens on a free loopback port and forwards to `upstream_port`."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.rule: HoldRule | None = None
        self.lock = threading.Lock()
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, name="wireproxy-accept", daemon=True).start()

    def arm(self, rule: HoldRule) -> HoldRule:
        with self.lock:
            self.rule = rule
        return rule

    def disarm(self) -> None:
        with self.lock:
            rule, self.rule = self.rule, None
        if rule:
            rule.release.set()

    def close(self) -> None:
        self.closed = True
        self.disarm()
        for s in [self.listener, *self.sockets]:
            try:
                s.close()
            except OSError:
                pass

    # -- plumbing ------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            threading.Thread(target=self._client_to_server, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(upstream, client), daemon=True).start()

    def _server_to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while True:
                message = _recv_message(upstream)
                if message is None:
                    break
                _, _, response_to, _ = struct.unpack_from("<iiii", message)
                rule = self.rule
                if rule is not None and rule.fired and rule.request_id == response_to and not rule.release.is_set():
                    rule.held.set()
                    rule.release.wait(rule.max_hold_secs)
                client.sendall(message)
        except OSError:
            pass
        _close_both(client, upstream)

    def _client_to_server(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                message = _recv_message(client)
                if message is None:
                    break
                _, request_id, _, opcode = struct.unpack_from("<iiii", message)
                if opcode == OP_MSG and self.rule is not None:
                    self._maybe_mark(message[16:], request_id)
                upstream.sendall(message)
        except OSError:
            pass
        _close_both(client, upstream)

    def _maybe_mark(self, payload: bytes, request_id: int) -> None:
        """Marks the command whose reply is to be held."""
        try:
            command = decode_op_msg(payload)
        except Exception:  # noqa: BLE001 - never break the connection over parsing
            return
        with self.lock:
            rule = self.rule
            if rule is None or rule.fired:
                return
            if rule.after is not None and not rule.seen_after:
                rule.seen_after = rule.after(command)
                return
            if not rule.target(command):
                return
            rule.count += 1
            if rule.count < rule.nth:
                return
            rule.fired = True
            rule.request_id = request_id
            rule.held_command = command


def decode_op_msg(payload: bytes) -> Command:
    """Decodes an OP_MSG body (everything after the 16-byte header)."""
    (flags,) = struct.unpack_from("<I", payload, 0)
    end = len(payload) - (4 if flags & 1 else 0)
    pos = 4
    body: dict = {}
    sequences: dict[str, list[dict]] = {}
    while pos < end:
        kind = payload[pos]
        pos += 1
        (size,) = struct.unpack_from("<i", payload, pos)
        if kind == 0:
            body = bson.decode(payload[pos : pos + size])
            pos += size
        else:
            section_end = pos + size
            name_end = payload.index(b"\x00", pos + 4)
            ident = payload[pos + 4 : name_end].decode()
            docs = []
            p = name_end + 1
            while p < section_end:
                (doc_size,) = struct.unpack_from("<i", payload, p)
                docs.append(bson.decode(payload[p : p + doc_size]))
                p += doc_size
            sequences[ident] = docs
            pos = section_end
    name = next(iter(body), "")
    return Command(name=name, target=body.get(name), db=str(body.get("$db", "")), body=body, sequences=sequences)


def _recv_message(sock: socket.socket) -> bytes | None:
    """One whole wire-protocol message (header included), or None at EOF."""
    header = _recv_exact(sock, 16)
    if header is None:
        return None
    (length,) = struct.unpack_from("<i", header)
    rest = _recv_exact(sock, length - 16)
    return None if rest is None else header + rest


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _close_both(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
