"""Fixtures for the adversarial suite: attacks on the real `ktable serve` binary.

Each server is the built binary on the embedded demo cluster, with a `--config` file
that declares two SCRAM users, `admin` (read-write) and `reader` (read_only), on an
ephemeral loopback port. The binary is `$KTABLE_BIN`, else
`$CARGO_TARGET_DIR/debug/ktable` (what `.ci/run` builds). A failing test prints the
tail of its server's log.

Fixtures:
* `ktable` — one server shared by the whole session (tests that leave it as they
  found it).
* `start_ktable(**settings)` — a server of the test's own, with extra top-level
  config keys (`max_connections = 3`, `authentication_timeout = "1s"`, ...), stopped
  when the test ends.

Both give a `Server`: `host`, `port`, `dsn(user)`, `connect(user)` (a psycopg
connection, autocommit), `log_tail()`.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "adm1n-pw", "reader": "r3ader-pw"}
START_TIMEOUT = 60


def binary() -> Path:
    if "KTABLE_BIN" in os.environ:
        return Path(os.environ["KTABLE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "ktable"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Server:
    """A running `ktable serve`; stop() ends it."""

    def __init__(self, workdir: Path, settings: dict):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.log_path = workdir / f"ktable-{self.port}.log"
        config = workdir / f"ktable-{self.port}.toml"
        lines = [f'listen = "{self.host}:{self.port}"']
        lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
        for name, password in PASSWORDS.items():
            lines += ["", "[[users]]", f'name = "{name}"', f'password = "{password}"']
            if name == "reader":
                lines.append("read_only = true")
        config.write_text("\n".join(lines) + "\n")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(binary()), "serve", "--config", str(config)],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_serving()

    def _wait_until_serving(self):
        deadline = time.time() + START_TIMEOUT
        while True:
            assert self.process.poll() is None, f"ktable exited:\n{self.log_tail()}"
            try:
                with self.connect("admin") as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                pass
            assert time.time() < deadline, f"ktable did not serve:\n{self.log_tail()}"
            time.sleep(0.2)

    def dsn(self, user: str = "admin") -> str:
        return (
            f"host={self.host} port={self.port} user={user} dbname=ktable "
            f"password={PASSWORDS[user]} sslmode=disable connect_timeout=10"
        )

    def connect(self, user: str = "admin") -> psycopg.Connection:
        return psycopg.connect(self.dsn(user), autocommit=True)

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request) -> bool:
    return any(
        getattr(request.node, f"report_{when}", None) is not None
        and getattr(request.node, f"report_{when}").failed
        for when in ("setup", "call")
    )


@pytest.fixture(scope="session")
def _shared_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("ktable"), {})
    yield server
    server.stop()


@pytest.fixture
def ktable(_shared_server, request):
    """The session's shared server; its log tail is printed if the test fails."""
    yield _shared_server
    if _failed(request):
        print(f"--- ktable log (port {_shared_server.port}) ---\n{_shared_server.log_tail()}")


@pytest.fixture
def start_ktable(tmp_path, request):
    """Starts a server with extra config settings; stopped when the test ends."""
    servers = []

    def start(**settings) -> Server:
        server = Server(tmp_path, settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if _failed(request):
            print(f"--- ktable log (port {server.port}) ---\n{server.log_tail()}")
        server.stop()
