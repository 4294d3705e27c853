"""Python PostgreSQL clients against a running `ktable serve` (the embedded demo).

`.ci/run` starts the server and sets KTABLE_PG_PORT; run by hand with
`KTABLE_PG_PORT=5433 python3 -m pytest tests/clients` while `cargo run -- serve` runs.
"""

import os
import subprocess
import threading
import time

import pandas
import psycopg
import pytest
import sqlalchemy

PORT = int(os.environ.get("KTABLE_PG_PORT", "5433"))
DSN = f"host=127.0.0.1 port={PORT} user=ktable dbname=ktable"
URL = f"postgresql+psycopg://ktable@127.0.0.1:{PORT}/ktable"


@pytest.fixture(scope="module")
def demo_ready():
    """Waits until the demo generator has written every user and some orders."""
    deadline = time.time() + 60
    while True:
        try:
            with psycopg.connect(DSN, autocommit=True) as conn:
                users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
                orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
                # 1,000 users at start; about 750 once tombstones have touched them all.
                if users >= 500 and orders > 0:
                    return
        except psycopg.OperationalError:
            pass
        assert time.time() < deadline, "the demo server did not fill users and orders"
        time.sleep(0.5)


def test_psycopg_queries_with_parameters(demo_ready):
    with psycopg.connect(DSN, autocommit=True) as conn:
        rows = conn.execute("SELECT id, name, email FROM users WHERE id = %s", ("user-7",)).fetchall()
        # user-7 may be deleted by a tombstone at this moment; any row must be user-7's.
        assert all(row == ("user-7", "User 7", "user7@example.com") for row in rows)
        # One query: the demo table changes between two.
        adults, everyone = conn.execute(
            "SELECT count(*) FILTER (WHERE age >= %s), count(*) FROM users", (18,)
        ).fetchone()
        assert 0 < adults <= everyone
        with pytest.raises(psycopg.Error) as error:
            conn.execute("SELECT * FROM no_such_table")
        assert "no_such_table" in str(error.value)


def test_sqlalchemy_lists_tables(demo_ready):
    engine = sqlalchemy.create_engine(URL)
    tables = sqlalchemy.inspect(engine).get_table_names()
    assert {"users", "orders"} <= set(tables), tables


def test_sqlalchemy_reflects_columns(demo_ready):
    # SQLAlchemy's column query reads defaults, identity and collation through
    # correlated subqueries and json_build_object: what ORMs and Alembic rely on.
    engine = sqlalchemy.create_engine(URL)
    columns = sqlalchemy.inspect(engine).get_columns("users")
    types = {c["name"]: type(c["type"]) for c in columns}
    # sql/demo.sql declares these, in this order.
    assert [c["name"] for c in columns] == ["id", "name", "email", "age", "city", "_timestamp"]
    assert issubclass(types["id"], sqlalchemy.String), types
    assert issubclass(types["age"], sqlalchemy.Integer), types
    assert issubclass(types["_timestamp"], sqlalchemy.DateTime), types
    by_name = {c["name"]: c for c in columns}
    assert by_name["id"]["nullable"] is False  # the key
    assert by_name["name"]["nullable"] is True
    assert all(c["default"] is None and "identity" not in c for c in columns), columns
    orders = sqlalchemy.inspect(engine).get_columns("orders")
    assert [c["name"] for c in orders] == ["order_id", "user_id", "amount", "ts"]
    assert issubclass(type(orders[2]["type"]), sqlalchemy.Float), orders


def test_pandas_reads_a_join(demo_ready):
    engine = sqlalchemy.create_engine(URL)
    frame = pandas.read_sql(
        "SELECT o.order_id, u.name, o.amount FROM orders o JOIN users u ON o.user_id = u.id",
        engine,
    )
    assert list(frame.columns) == ["order_id", "name", "amount"]
    assert len(frame) > 0
    assert frame["name"].str.startswith("User ").all()


def test_psycopg_declare_fetch_subscribe(demo_ready):
    # Materialize's way in: a cursor in a transaction, FETCH with a timeout.
    with psycopg.connect(DSN) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "DECLARE c CURSOR FOR SUBSCRIBE (SELECT id, name FROM users) WITH (SNAPSHOT = false)"
            )
            rows = []
            deadline = time.time() + 30
            while not rows and time.time() < deadline:
                cur.execute("FETCH ALL c WITH (timeout = '2s')")
                rows = cur.fetchall()
            assert rows, "the demo's updates arrive through the cursor"
            columns = [d.name for d in cur.description]
            assert columns == ["ktable_partition", "ktable_offset", "ktable_op", "id", "name"]
            for partition, offset, op, key, name in rows:
                assert partition >= 0 and offset >= 0, rows
                assert op in ("upsert", "delete") and key.startswith("user-"), rows
                assert (name is None) == (op == "delete"), rows
            cur.execute("CLOSE c")


def test_psycopg_streams_a_bare_subscribe(demo_ready):
    with psycopg.connect(DSN, autocommit=True) as conn:
        seen = []
        for row in conn.cursor().stream("SUBSCRIBE (SELECT id, age FROM users WHERE age >= 18)"):
            seen.append(row)
            if len(seen) == 5:
                break
        assert [r[2] for r in seen] == ["snapshot"] * 5, seen
        assert all(r[4] >= 18 for r in seen), seen


def test_psql_copy_subscribe_to_stdout(demo_ready):
    psql = subprocess.Popen(
        ["psql", "-h", "127.0.0.1", "-p", str(PORT), "-U", "ktable", "-d", "ktable", "-X",
         "-c", "COPY (SUBSCRIBE (SELECT id, name FROM users)) TO STDOUT"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # It never ends by itself: stop it once the snapshot's lines arrive.
    timer = threading.Timer(30, psql.kill)
    timer.start()
    try:
        line = psql.stdout.readline()
    finally:
        timer.cancel()
        psql.kill()
        psql.wait()
    fields = line.rstrip("\n").split("\t")
    assert fields[:3] == ["\\N", "\\N", "snapshot"], line
    assert fields[3].startswith("user-"), line
