"""A fault-injecting LDAP proxy for tests: a small real TCP server in front of the test slapd.

``LdapFaultProxy(("127.0.0.1", slapd.port))`` listens on 127.0.0.1 (a free port; ``proxy.url``)
and relays every connection to the upstream server, one upstream connection per client
connection, message by message. It reads only the envelope of each LDAPMessage (RFC 4511 §4.2:
``SEQUENCE { messageID, protocolOp, controls }``, BER with definite lengths) by hand: the
messageID, the protocolOp's tag, and the entry's DN for add, modify, modDN and delete (and the
base of a search). Faults are set per test with :meth:`LdapFaultProxy.inject` and are used up
in order, each for the next ``count`` requests of its kind (and, if ``dn`` is given, only
those whose DN starts with it, case-insensitively; ``after=N`` lets the first N through):

* ``answer``: the proxy answers the request itself with an LDAPResult of ``code`` (51 busy, 52
  unavailable, 3 timeLimitExceeded, 19 constraintViolation...) and ``message``, with the same
  messageID and the matching response op (addResponse 9, modifyResponse 7, delResponse 11,
  modDNResponse 13, searchResDone 5). The server never sees the request.
* ``delay``: the request goes to the server (which applies it), and its answer is held back
  ``seconds`` before it is relayed: past the client's timeout, the client gives up on the
  connection first.
* ``drop``: the connection is closed mid-request, before the request reaches the server
  (``applied=False``) or once the server has answered it (``applied=True``: done, answer lost).
  With ``down=True`` every other connection is closed too and new ones are closed as soon as
  they are accepted, until :meth:`LdapFaultProxy.restore`: the directory is unreachable.

Everything the proxy saw is in ``proxy.seen``: the connection it came on (numbered from 1 in
the order they were accepted), its kind, its DN, and what the proxy did; ``proxy.writes`` holds
(sent, answered) monotonic times of each write it forwarded (add, modify, modDN, delete), from the
request's arrival to its answer reaching the client: what a directory's per-client limits see. ``stop()`` closes the
listener and every connection; the threads are daemons and end with their sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

# protocolOp tags of requests (APPLICATION class; constructed, except delRequest: an LDAPDN)
REQUESTS = {0x68: "add", 0x66: "modify", 0x4A: "delete", 0x6C: "modDN", 0x63: "search"}
OTHERS = {0x60: "bind", 0x42: "unbind", 0x50: "abandon", 0x77: "extended", 0x6E: "compare"}
# the response op numbers (RFC 4511 §4.2): addResponse 9, modifyResponse 7, delResponse 11,
# modDNResponse 13, searchResDone 5
RESPONSES = {"add": 9, "modify": 7, "delete": 11, "modDN": 13, "search": 5}
ACTIONS = ("answer", "delay", "drop")
WRITES = frozenset({"add", "modify", "delete", "modDN"})


# ---- BER, as much as the envelope needs --------------------------------------------------------


def _length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _header(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, length of content) of the element at ``at``."""
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        return tag, at + 2, first
    count = first & 0x7F
    return tag, at + 2 + count, int.from_bytes(data[at + 2: at + 2 + count], "big")


def message_size(data: bytes) -> int | None:
    """The size of the whole message at the start of ``data``, or None if its header is incomplete."""
    if len(data) < 2:
        return None
    if data[1] < 0x80:
        return 2 + data[1]
    count = data[1] & 0x7F
    if len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2: 2 + count], "big")


def envelope(message: bytes) -> tuple[int, int, str | None]:
    """(messageID, protocolOp tag, DN of the entry the request is about, if it names one)."""
    _, at, _ = _header(message, 0)
    _, start, size = _header(message, at)  # messageID INTEGER
    message_id = int.from_bytes(message[start: start + size], "big", signed=True)
    op_at = start + size
    op_tag, op_start, op_size = _header(message, op_at)
    dn = None
    if op_tag == 0x4A:  # delRequest ::= [APPLICATION 10] LDAPDN
        dn = message[op_start: op_start + op_size].decode("utf-8", "replace")
    elif op_tag in REQUESTS and op_size:
        tag, start, size = _header(message, op_start)  # the first element: entry, object or baseObject
        if tag == 0x04:
            dn = message[start: start + size].decode("utf-8", "replace")
    return message_id, op_tag, dn


def result_message(message_id: int, kind: str, code: int, text: str, matched: str = "") -> bytes:
    """An LDAPMessage carrying ``kind``'s response op with an LDAPResult of ``code``."""
    result = tlv(0x0A, bytes([code])) + tlv(0x04, matched.encode()) + tlv(0x04, text.encode())
    op = tlv(0x60 | RESPONSES[kind], result)
    mid = tlv(0x02, message_id.to_bytes(message_id.bit_length() // 8 + 1, "big", signed=True))
    return tlv(0x30, mid + op)


def frames(sock: socket.socket) -> Iterator[bytes]:
    """Whole LDAPMessages as they arrive on ``sock``, until it closes."""
    buffer = b""
    while True:
        size = message_size(buffer)
        while size is None or len(buffer) < size:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            size = message_size(buffer)
        yield buffer[:size]
        buffer = buffer[size:]


# ---- faults ----------------------------------------------------------------------------------


@dataclass
class Fault:
    """What to do to the next ``count`` requests of ``kind`` (whose DN starts with ``dn``, if given)."""

    kind: str
    action: str = "answer"
    count: int = 1
    code: int = 51
    message: str = "injected by the test proxy"
    dn: str | None = None
    seconds: float = 60.0  # delay: how long the answer is held back
    applied: bool = True  # drop: after the server answered (True) or before it saw the request
    down: bool = False  # drop: then refuse every connection until restore()
    after: int = 0  # let this many matching requests through first (counted once earlier faults are used up)

    def matches(self, kind: str, dn: str | None) -> bool:
        return self.count > 0 and kind == self.kind and (self.dn is None or (dn or "").lower().startswith(self.dn.lower()))


@dataclass(frozen=True)
class Seen:
    connection: int
    kind: str
    dn: str | None
    action: str  # "forwarded", or the fault's action ("answer 51", "delay", "drop")


@dataclass(eq=False)
class _Relay:
    """One client connection and its upstream connection."""

    proxy: LdapFaultProxy
    number: int  # the proxy's connections are numbered from 1, in the order they were accepted
    client: socket.socket
    upstream: socket.socket
    held: dict[int, Fault] = field(default_factory=dict)  # messageID -> the fault waiting for its answer
    sent: dict[int, float] = field(default_factory=dict)  # messageID -> when a forwarded write arrived
    timers: list[threading.Timer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def start(self) -> None:
        for pump in (self.requests, self.answers):
            threading.Thread(target=pump, daemon=True).start()

    def to_client(self, data: bytes) -> None:
        with self.lock:
            if self.closed:
                return
            with contextlib.suppress(OSError):
                self.client.sendall(data)

    def deliver(self, message_id: int, message: bytes) -> None:
        """An answer from the server to the client; a forwarded write's is timed as answered before
        it is sent on, so the client's next request can never look as if it overlapped this one."""
        answered = time.monotonic()
        with self.lock:
            sent = self.sent.pop(message_id, None)
        if sent is not None:
            self.proxy._answered(sent, answered)
        self.to_client(message)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            timers, self.timers = self.timers, []
        for timer in timers:
            timer.cancel()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self.proxy._forget(self)

    def requests(self) -> None:
        try:
            for message in frames(self.client):
                message_id, tag, dn = envelope(message)
                kind = REQUESTS.get(tag)
                fault = self.proxy._take(kind, dn) if kind else None
                self.proxy._record(self.number, kind or OTHERS.get(tag, f"op 0x{tag:02x}"), dn, fault)
                if kind in WRITES and (fault is None or fault.action != "answer"):
                    with self.lock:
                        self.sent[message_id] = time.monotonic()
                if fault is None:
                    self.upstream.sendall(message)
                elif fault.action == "answer":
                    self.to_client(result_message(message_id, kind or "add", fault.code, fault.message))
                elif fault.action == "drop" and not fault.applied:
                    self._drop(fault)
                    return
                else:  # delay, or drop once applied: the server gets it, its answer waits here
                    with self.lock:
                        self.held[message_id] = fault
                    self.upstream.sendall(message)
        except OSError:
            pass
        finally:
            self.close()

    def answers(self) -> None:
        try:
            for message in frames(self.upstream):
                message_id, _, _ = envelope(message)
                with self.lock:
                    fault = self.held.pop(message_id, None)
                if fault is None:
                    self.deliver(message_id, message)
                elif fault.action == "drop":
                    self._drop(fault)
                    return
                else:
                    timer = threading.Timer(fault.seconds, self.deliver, [message_id, message])
                    timer.daemon = True
                    with self.lock:
                        if self.closed:
                            return
                        self.timers.append(timer)
                    timer.start()
        finally:
            self.close()

    def _drop(self, fault: Fault) -> None:
        if fault.down:
            self.proxy.take_down()
        self.close()


class LdapFaultProxy:
    """A threaded TCP proxy on 127.0.0.1 in front of ``upstream`` (host, port), with :class:`Fault`\\ s."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.writes: list[tuple[float, float]] = []  # (sent, answered) of each forwarded write
        self.down = False
        self.lock = threading.Lock()
        self.relays: set[_Relay] = set()
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def inject(self, kind: str, action: str = "answer", count: int = 1, **options: object) -> Fault:
        """Add a fault (see :class:`Fault`); faults of the same kind are used up in the order given."""
        assert kind in RESPONSES and action in ACTIONS, (kind, action)
        assert kind != "search" or action == "answer", "a search is answered in several messages: answer it only"
        fault = Fault(kind, action, count, **options)  # type: ignore[arg-type]
        with self.lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        """No faults, nothing seen, connections accepted again."""
        with self.lock:
            self.faults.clear()
            self.seen.clear()
            self.writes.clear()
            self.down = False

    def restore(self) -> None:
        with self.lock:
            self.down = False

    def take_down(self) -> None:
        """Close every connection, and each new one as soon as it is accepted, until :meth:`restore`."""
        with self.lock:
            self.down = True
            relays = list(self.relays)
        for relay in relays:
            relay.close()

    def pending(self) -> int:
        """How many faulted requests are still to come."""
        with self.lock:
            return sum(f.count for f in self.faults)

    def actions(self, kind: str | None = None) -> list[str]:
        with self.lock:
            return [s.action for s in self.seen if kind is None or s.kind == kind]

    def stop(self) -> None:
        self.stopped = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.listener.close()
        self.thread.join(timeout=5)
        with self.lock:
            relays = list(self.relays)
        for relay in relays:
            relay.close()

    # ---- internals --------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                down = self.down or self.stopped
            if down:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.accepted += 1
                relay = _Relay(self, self.accepted, client, upstream)
                self.relays.add(relay)
            relay.start()

    def _forget(self, relay: _Relay) -> None:
        with self.lock:
            self.relays.discard(relay)

    def _take(self, kind: str, dn: str | None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(kind, dn):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.count -= 1
                    return fault
            return None

    def _answered(self, sent: float, answered: float) -> None:
        with self.lock:
            self.writes.append((sent, answered))

    def most_writes_in_flight(self) -> int:
        """The most writes the server had sent to it and not yet answered, at any moment."""
        with self.lock:
            events = sorted([(t, 1) for t, _ in self.writes] + [(t, -1) for _, t in self.writes],
                            key=lambda e: (e[0], e[1]))
        most = now = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most

    def _record(self, connection: int, kind: str, dn: str | None, fault: Fault | None) -> None:
        action = "forwarded" if fault is None else f"answer {fault.code}" if fault.action == "answer" else fault.action
        with self.lock:
            self.seen.append(Seen(connection, kind, dn, action))
