"""Connection-level attacks on `ktable serve`: by anyone who can reach the port, and
by a user with a login who sends what no driver would.

Each attack asserts what the server answers (PostgreSQL's SQLSTATE where PostgreSQL
has one) and that the server still serves a normal psycopg login afterwards. Raw
protocol bytes go over plain sockets; `Wire` below speaks just enough of the
protocol (startup, SCRAM-SHA-256) to reach the state an attack needs.
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import threading
import time

import psycopg
import pytest

from conftest import PASSWORDS

# The longest any step waits for the server before the test fails.
PATIENCE = 30
SLOW = "SELECT count(*) FROM generate_series(1, 100000000000) a"


def message(tag: bytes, body: bytes = b"") -> bytes:
    return tag + struct.pack("!i", len(body) + 4) + body


def startup_packet(user: str, version: int = 196608) -> bytes:
    body = struct.pack("!i", version)
    for key, value in (("user", user), ("database", "ktable")):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def fields(body: bytes) -> dict:
    """The fields of an ErrorResponse or NoticeResponse body, by type letter."""
    out = {}
    for field in body.split(b"\0"):
        if field:
            out[chr(field[0])] = field[1:].decode(errors="replace")
    return out


class Wire:
    """One raw connection."""

    def __init__(self, server):
        self.sock = socket.create_connection((server.host, server.port), timeout=PATIENCE)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def read(self):
        """One backend message (tag, body); None once the server has closed."""
        try:
            head = self.recv_exact(5)
            (length,) = struct.unpack("!i", head[1:])
            return head[:1], self.recv_exact(length - 4)
        except (EOFError, ConnectionResetError):
            return None

    def read_until(self, tag: bytes):
        while True:
            msg = self.read()
            assert msg is not None, f"closed before {tag!r}"
            if msg[0] == tag:
                return msg[1]
            if msg[0] == b"E":
                raise AssertionError(f"error before {tag!r}: {fields(msg[1])}")

    def rest(self) -> list:
        """Every message until the server closes the connection."""
        out = []
        while (msg := self.read()) is not None:
            out.append(msg)
        return out

    def errors_until_close(self) -> list:
        return [fields(body) for tag, body in self.rest() if tag == b"E"]

    def close(self):
        self.sock.close()

    def start_scram(self, user: str = "admin"):
        """Startup as `user`, up to the server's AuthenticationSASL."""
        self.send(startup_packet(user))
        body = self.read_until(b"R")
        assert struct.unpack("!i", body[:4])[0] == 10, "AuthenticationSASL"

    def login(self, user: str = "admin"):
        """A whole SCRAM-SHA-256 login; returns (pid, secret key) from BackendKeyData."""
        self.start_scram(user)
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n=,r={nonce}"
        first = ("n,," + first_bare).encode()
        self.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        server_first = self.read_until(b"R")[4:].decode()
        attrs = dict(part.split("=", 1) for part in server_first.split(","))
        salted = hashlib.pbkdf2_hmac(
            "sha256", PASSWORDS[user].encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}"
        self.send(message(b"p", final.encode()))
        key = None
        while True:
            msg = self.read()
            assert msg is not None, "closed during login"
            tag, body = msg
            assert tag != b"E", fields(body)
            if tag == b"K":
                key = struct.unpack("!ii", body[:8])
            if tag == b"Z":
                return key


def connect_when_free(server, user="admin"):
    """A connection once a slot is free: the server gives a slot back when it has
    read the close of the previous connection, a moment after the client closed."""
    deadline = time.time() + PATIENCE
    while True:
        try:
            return server.connect(user)
        except psycopg.OperationalError as error:
            assert "too many" in str(error) and time.time() < deadline, error
            time.sleep(0.05)


def assert_serves(server):
    with server.connect("reader") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def assert_violation(wire: Wire, what: str):
    errors = wire.errors_until_close()
    assert [e.get("C") for e in errors] == ["08P01"], f"{what}: {errors}"
    assert errors[0].get("S") == "FATAL", f"{what}: {errors}"


# --- without a login -----------------------------------------------------------


@pytest.mark.parametrize(
    "what, data",
    [
        ("HTTP request", b"GET / HTTP/1.1\r\nHost: ktable\r\n\r\n"),
        ("random bytes", os.urandom(64)),
        ("startup packet shorter than its header", struct.pack("!i", 4) + b"\0\0\0\0"),
        ("startup packet of 2 GiB", struct.pack("!i", 0x7FFFFFFF) + struct.pack("!i", 196608)),
        ("negative startup length", struct.pack("!i", -8) + struct.pack("!i", 196608)),
        ("unsupported protocol version", startup_packet("admin", version=(9 << 16))),
    ],
)
def test_garbage_before_startup_is_refused(ktable, what, data):
    wire = Wire(ktable)
    wire.send(data)
    errors = wire.errors_until_close()
    # An error is optional for bytes that are not the protocol at all; a reply other
    # than a FATAL protocol error, or no close, is a failure.
    assert all(e.get("S") == "FATAL" for e in errors), f"{what}: {errors}"
    assert_serves(ktable)


def test_sslrequest_then_garbage(ktable):
    wire = Wire(ktable)
    wire.send(struct.pack("!ii", 8, 80877103))
    assert wire.recv_exact(1) == b"N", "no TLS configured: refused with N"
    wire.send(b"\x16\x03\x01\x02\x00" + os.urandom(100))
    errors = wire.errors_until_close()
    assert all(e.get("S") == "FATAL" for e in errors), errors
    assert_serves(ktable)


def test_half_startup_packets_and_silent_sockets_time_out(start_ktable):
    server = start_ktable(max_connections=3, authentication_timeout="1s", max_connections_per_address=0)
    silent = [Wire(server) for _ in range(3)]
    half = Wire(server)
    half.send(startup_packet("admin")[:7])
    # Every login slot is held: a client is told so, in PostgreSQL's words.
    with pytest.raises(psycopg.OperationalError) as refused:
        server.connect("admin")
    # libpq reports a failed connection as text, without a SQLSTATE.
    assert "sorry, too many clients already" in str(refused.value), refused.value
    # The server closes them all once the authentication timeout passes...
    for wire in silent + [half]:
        wire.rest()
    # ...and a real client gets in.
    assert_serves(server)


def test_stalled_sasl_exchange_times_out(start_ktable):
    server = start_ktable(authentication_timeout="1s")
    wire = Wire(server)
    wire.start_scram()
    errors = wire.errors_until_close()
    assert [e.get("C") for e in errors] == ["57014"], errors
    assert "authentication" in errors[0].get("M", "")
    assert_serves(server)


def test_clients_over_the_limit_hear_53300(start_ktable):
    server = start_ktable(max_connections=2)
    held = [connect_when_free(server, "admin"), connect_when_free(server, "reader")]
    for sslmode in ("disable", "prefer"):
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(server.dsn("admin").replace("sslmode=disable", f"sslmode={sslmode}"))
        assert "sorry, too many clients already" in str(refused.value), refused.value
    held.pop().close()
    connect_when_free(server, "reader").close()
    held[0].close()


def test_one_address_has_a_share(start_ktable):
    server = start_ktable(max_connections=16, max_connections_per_address=2)
    held = [connect_when_free(server), connect_when_free(server)]
    with pytest.raises(psycopg.OperationalError) as refused:
        server.connect("admin")
    assert "too many connections from address 127.0.0.1" in str(refused.value), refused.value
    assert held[0].execute("SELECT 1").fetchone() == (1,)
    for conn in held:
        conn.close()


def test_many_idle_sockets_do_not_lock_out_sessions(start_ktable):
    server = start_ktable(max_connections=4, max_connections_per_address=0, authentication_timeout="2s")
    session = connect_when_free(server)
    sockets = [Wire(server) for _ in range(50)]
    assert session.execute("SELECT 1").fetchone() == (1,), "a logged-in session goes on"
    for wire in sockets:
        wire.rest()
    assert_serves(server)
    session.close()


# --- malformed messages --------------------------------------------------------

SASL_SHORT = b"SCRAM-SHA-256\0" + struct.pack("!i", 100) + b"n,,"


@pytest.mark.parametrize(
    "what, data",
    [
        ("password message of length 0", b"p\0\0\0\0"),
        ("password message of length 2", b"p\0\0\0\x02"),
        ("password message of length 3", b"p\0\0\0\x03"),
        ("SASLInitialResponse claiming more than it sends", message(b"p", SASL_SHORT)),
        ("SASLInitialResponse without a NUL", message(b"p", b"SCRAM-SHA-256")),
        ("cleartext password answering SCRAM", message(b"p", PASSWORDS["admin"].encode() + b"\0")),
        ("unknown SASL mechanism", message(b"p", b"PLAIN\0" + struct.pack("!i", -1))),
        ("a query before login", message(b"Q", b"SELECT 1\0")),
        ("password message of 1 MiB", b"p" + struct.pack("!i", 1 << 20)),
    ],
)
def test_malformed_login_messages(ktable, what, data):
    wire = Wire(ktable)
    wire.start_scram()
    wire.send(data)
    errors = wire.errors_until_close()
    assert len(errors) == 1 and errors[0].get("S") == "FATAL", f"{what}: {errors}"
    assert errors[0].get("C") in ("08P01", "28000", "28P01"), f"{what}: {errors}"
    assert_serves(ktable)


PARSE_NO_TYPES = b"\0SELECT 1\0" + struct.pack("!H", 0xFFFF)
BIND_PAST_END = b"\0\0" + struct.pack("!HHi", 0, 1, 1000) + b"ab" + struct.pack("!H", 0)


@pytest.mark.parametrize(
    "what, data",
    [
        ("Parse declaring 65535 types and sending none", message(b"P", PARSE_NO_TYPES)),
        ("Bind whose value runs past the message", message(b"B", BIND_PAST_END)),
        ("Bind with a negative value length", message(b"B", b"\0\0" + struct.pack("!HHiH", 0, 1, -5, 0))),
        ("Execute without its row count", message(b"E", b"\0")),
        ("Describe without a body", message(b"D")),
        ("Close without a body", message(b"C")),
        ("a message of negative length", b"Q" + struct.pack("!i", -16)),
        ("a message of length 2", b"S" + struct.pack("!i", 2)),
        ("an unknown message type", message(b"!")),
    ],
)
def test_malformed_messages_after_login(ktable, what, data):
    wire = Wire(ktable)
    wire.login("reader")
    wire.send(data)
    assert_violation(wire, what)
    assert_serves(ktable)


def test_a_message_cut_short_by_a_close_does_not_hurt(ktable):
    wire = Wire(ktable)
    wire.login("reader")
    wire.send(message(b"Q", b"SELECT 1\0")[:-3])
    wire.close()
    assert_serves(ktable)


# --- cancel requests -----------------------------------------------------------


def cancel_request(server, pid: int, key: int):
    wire = Wire(server)
    wire.send(struct.pack("!iiii", 16, 80877102, pid, key))
    assert wire.rest() == [], "a cancel request gets no answer"


def run_in_thread(conn, sql):
    outcome = {}

    def run():
        try:
            conn.execute(sql)
            outcome["result"] = "finished"
        except psycopg.Error as error:
            outcome["result"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_cancel_requests_with_wrong_keys_are_ignored(ktable):
    conn = ktable.connect("reader")
    pid = conn.info.backend_pid
    thread, outcome = run_in_thread(conn, SLOW)
    time.sleep(0.3)
    for key in (0, 1, -1, 0x7FFFFFFF, 12345):
        cancel_request(ktable, pid, key)
    cancel_request(ktable, pid + 1, 0)
    cancel_request(ktable, -1, -1)
    # Garbage after a cancel request's magic number.
    wire = Wire(ktable)
    wire.send(struct.pack("!ii", 12, 80877102) + b"\0\0\0\0")
    wire.rest()
    time.sleep(0.5)
    assert thread.is_alive(), f"a wrong key cancelled the query: {outcome}"
    conn.cancel()
    thread.join(PATIENCE)
    assert not thread.is_alive(), "the right key did not cancel"
    assert isinstance(outcome["result"], psycopg.errors.QueryCanceled), outcome
    conn.close()
    assert_serves(ktable)


def test_psycopg_cancel_works_on_every_connection(ktable):
    conns = [ktable.connect(user) for user in ("admin", "reader", "reader")]
    pids = {conn.info.backend_pid for conn in conns}
    assert len(pids) == len(conns), f"process ids are not unique: {pids}"
    runs = [run_in_thread(conn, SLOW) for conn in conns]
    time.sleep(0.3)
    for conn in conns:
        conn.cancel()
    for (thread, outcome), conn in zip(runs, conns):
        thread.join(PATIENCE)
        assert not thread.is_alive(), f"pid {conn.info.backend_pid} was not cancelled"
        assert isinstance(outcome["result"], psycopg.errors.QueryCanceled), outcome
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.close()


def test_cancel_is_served_when_the_server_is_full(start_ktable):
    server = start_ktable(max_connections=1)
    conn = connect_when_free(server, "reader")
    thread, outcome = run_in_thread(conn, SLOW)
    time.sleep(0.3)
    conn.cancel()
    thread.join(PATIENCE)
    assert not thread.is_alive(), "a full server did not serve the cancel request"
    assert isinstance(outcome["result"], psycopg.errors.QueryCanceled), outcome
    conn.close()


# --- idle sessions -------------------------------------------------------------


def test_idle_sessions_end_with_57p05(start_ktable):
    server = start_ktable(idle_session_timeout="500ms")
    wire = Wire(server)
    wire.login("reader")
    errors = wire.errors_until_close()
    assert [e.get("C") for e in errors] == ["57P05"], errors
    assert errors[0].get("M") == "terminating connection due to idle-session timeout"
    # A session that keeps working stays.
    with server.connect("reader") as conn:
        for _ in range(5):
            time.sleep(0.05)
            assert conn.execute("SELECT 1").fetchone() == (1,)
