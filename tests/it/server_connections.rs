//! Connection-level hardening, tried the way an attacker would: cancel requests on
//! every connection, connection slots held by sockets that never log in, idle
//! sessions, and malformed protocol messages sent as raw bytes.
//!
//! The raw-bytes tests speak just enough of the protocol by hand (a startup packet,
//! then one bad message) to reach the decoder state the attack needs; everything a
//! real client can do is done with tokio-postgres or psql.

use crate::broker::Broker;
use crate::server::{connect_as, start_with, TestServer};
use ktable::server::{ServerConfig, UserConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any step here waits before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn code(error: &tokio_postgres::Error) -> Option<&str> {
    error.code().map(|c| c.code())
}

fn scram_users() -> Vec<UserConfig> {
    vec![UserConfig {
        name: "admin".into(),
        password: "s3cret".into(),
        read_only: false,
    }]
}

/// Logs in as a valid user of `server` (whichever way it authenticates).
async fn login(server: &TestServer, scram: bool) -> tokio_postgres::Client {
    let (user, password) = if scram {
        ("admin", "s3cret")
    } else {
        ("ktable", "")
    };
    connect_as(server, user, password).await.expect("login")
}

/// [`login`], waiting while the server is full: it gives a slot back once it has
/// read the close of the connection that held it, a moment after the client closed.
async fn login_when_free(server: &TestServer, scram: bool) -> tokio_postgres::Client {
    let (user, password) = if scram {
        ("admin", "s3cret")
    } else {
        ("ktable", "")
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match connect_as(server, user, password).await {
            Ok(client) => return client,
            Err(error) if code(&error) == Some("53300") => {
                assert!(std::time::Instant::now() < deadline, "{error:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("login: {error:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_reaches_every_connection() {
    // Minutes of work, produced while the result streams.
    let slow = "SELECT count(*) FROM generate_series(1, 100000000000) a";
    for scram in [false, true] {
        let broker = Broker::start();
        let users = if scram { scram_users() } else { Vec::new() };
        let server = start_with(
            &broker,
            ServerConfig {
                users,
                ..ServerConfig::default()
            },
        )
        .await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(Arc::new(login(&server, scram).await));
        }
        // All three run at once; each is cancelled through its own key. Before each
        // connection had its own process id, only the first one stopped.
        let mut running = Vec::new();
        for (n, client) in clients.iter().enumerate() {
            let client = Arc::clone(client);
            running.push(tokio::spawn(async move {
                let token = client.cancel_token();
                let canceller = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    token.cancel_query(tokio_postgres::NoTls).await
                });
                let ended = if n % 2 == 0 {
                    client.simple_query(slow).await.err()
                } else {
                    client.query(slow, &[]).await.err()
                };
                canceller.await.expect("task").expect("cancel request sent");
                ended
            }));
        }
        for (n, run) in running.into_iter().enumerate() {
            let ended = tokio::time::timeout(PATIENCE, run)
                .await
                .unwrap_or_else(|_| panic!("connection {n} (scram: {scram}) was not cancelled"))
                .expect("task")
                .expect("the query ended with an error");
            assert_eq!(code(&ended), Some("57014"), "connection {n}: {ended:?}");
        }
        // Each connection goes on.
        for client in &clients {
            client.simple_query("SELECT 1").await.expect("after cancel");
        }
    }
}

/// Connects and sends nothing, as a slot-holding attacker does.
async fn silent_socket(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.address).await.expect("connect")
}

/// Waits until the server closes `socket` (reads until end of file).
async fn closed_by_server(socket: &mut TcpStream) {
    let mut sink = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut sink))
        .await
        .expect("the server closes a connection that does not log in")
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_timed_out_and_clients_over_the_limit_hear_53300() {
    let broker = Broker::start();
    let server = start_with(
        &broker,
        ServerConfig {
            users: scram_users(),
            max_connections: 3,
            max_connections_per_address: 0,
            authentication_timeout: Duration::from_millis(500),
            ..ServerConfig::default()
        },
    )
    .await;
    let working = login_when_free(&server, true).await;

    // Sockets that never send a startup packet take no session's slot, and are
    // closed once the authentication timeout passes.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(silent_socket(&server).await);
    }
    working
        .simple_query("SELECT 1")
        .await
        .expect("a logged-in session goes on while sockets sit silent");
    for socket in &mut silent {
        closed_by_server(socket).await;
    }
    let second = login_when_free(&server, true).await;
    let third = login_when_free(&server, true).await;

    // Every slot is taken: the next client is told why, in PostgreSQL's words, by
    // tokio-postgres (no SSLRequest) and by psql (SSLRequest first).
    let refused = connect_as(&server, "admin", "s3cret")
        .await
        .expect_err("a fourth session is refused");
    assert_eq!(code(&refused), Some("53300"), "{refused:?}");
    let psql = tokio::task::spawn_blocking({
        let address = server.address;
        move || psql_at(address, "prefer")
    })
    .await
    .expect("psql");
    let stderr = String::from_utf8_lossy(&psql.stderr);
    assert!(!psql.status.success());
    assert!(
        stderr.contains("sorry, too many clients already"),
        "{stderr}"
    );

    // A slot comes back when a session ends.
    drop(third);
    let again = login_when_free(&server, true).await;
    for client in [&working, &second, &again] {
        client.simple_query("SELECT 1").await.expect("served");
    }
}

/// psql as admin against `address`, with `sslmode`.
fn psql_at(address: std::net::SocketAddr, sslmode: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .arg(format!(
            "host={} port={} user=admin dbname=ktable sslmode={sslmode}",
            address.ip(),
            address.port()
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT 1"])
        .env("PGPASSWORD", "s3cret")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs (Debian package postgresql-client)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot() {
    let broker = Broker::start();
    let server = start_with(
        &broker,
        ServerConfig {
            max_connections: 8,
            max_connections_per_address: 2,
            ..ServerConfig::default()
        },
    )
    .await;
    let first = login_when_free(&server, false).await;
    let _second = login_when_free(&server, false).await;
    let refused = connect_as(&server, "ktable", "")
        .await
        .expect_err("a third connection from one address is refused");
    assert_eq!(code(&refused), Some("53300"), "{refused:?}");
    let message = refused
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("address"), "{refused:?}");
    // The sessions already in are unaffected.
    first.simple_query("SELECT 1").await.expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_ended_with_57p05() {
    let broker = Broker::start();
    let server = start_with(
        &broker,
        ServerConfig {
            idle_session_timeout: Some(Duration::from_millis(300)),
            ..ServerConfig::default()
        },
    )
    .await;
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=ktable dbname=ktable",
            server.address.ip(),
            server.address.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    let connection = tokio::spawn(connection);
    client.simple_query("SELECT 1").await.expect("served");
    let ended = tokio::time::timeout(PATIENCE, connection)
        .await
        .expect("an idle session is ended")
        .expect("task");
    let error = ended.expect_err("ended by the server with an error");
    assert_eq!(code(&error), Some("57P05"), "{error:?}");
}

/// A startup packet (protocol 3.0) for `user`.
fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (key, value) in [("user", user), ("database", "ktable")] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

/// A message with `tag` and `body`, its length computed honestly.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![tag];
    bytes.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Reads backend messages until one with `tag` arrives; panics at end of file.
async fn read_until(socket: &mut TcpStream, tag: u8) {
    loop {
        match read_message(socket).await {
            Some((t, _)) if t == tag => return,
            Some(_) => {}
            None => panic!("closed before message {:?}", tag as char),
        }
    }
}

/// One backend message (tag, body), or `None` at end of file.
async fn read_message(socket: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let mut head = [0u8; 5];
        socket.read_exact(&mut head).await.ok()?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let mut body = vec![0u8; usize::try_from(len).ok()?.checked_sub(4)?];
        socket.read_exact(&mut body).await.ok()?;
        Some((head[0], body))
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the server answers or closes")
}

/// The SQLSTATE field of an ErrorResponse body.
fn sqlstate_of(body: &[u8]) -> Option<String> {
    body.split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .map(|code| String::from_utf8_lossy(code).into_owned())
}

/// Sends `attack` and expects an ErrorResponse with SQLSTATE 08P01, then the close.
async fn expect_protocol_violation(socket: &mut TcpStream, attack: &[u8], what: &str) {
    socket.write_all(attack).await.expect("send");
    let mut errors = Vec::new();
    while let Some((tag, body)) = read_message(socket).await {
        if tag == b'E' {
            errors.push(sqlstate_of(&body));
        }
    }
    assert_eq!(
        errors,
        vec![Some("08P01".to_string())],
        "{what}: one protocol_violation error, then the connection closes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_08p01_and_a_close_not_a_panic() {
    let broker = Broker::start();
    let scram = start_with(
        &broker,
        ServerConfig {
            users: scram_users(),
            ..ServerConfig::default()
        },
    )
    .await;
    let mut sasl_initial_short = b"SCRAM-SHA-256\0".to_vec();
    sasl_initial_short.extend_from_slice(&100i32.to_be_bytes());
    sasl_initial_short.extend_from_slice(b"n,,");
    let before_login = [
        ("password message of length 0", b"p\0\0\0\0".to_vec()),
        ("password message of length 1", b"p\0\0\0\x01".to_vec()),
        ("password message of length 3", b"p\0\0\0\x03".to_vec()),
        (
            "SASLInitialResponse claiming more than it sends",
            message(b'p', &sasl_initial_short),
        ),
        (
            "SASLInitialResponse without a NUL after the mechanism",
            message(b'p', b"SCRAM-SHA-256"),
        ),
        (
            "cleartext password answering SCRAM",
            message(b'p', b"s3cret\0"),
        ),
    ];
    for (what, attack) in before_login {
        let mut socket = TcpStream::connect(scram.address).await.expect("connect");
        socket
            .write_all(&startup_packet("admin"))
            .await
            .expect("startup");
        read_until(&mut socket, b'R').await; // AuthenticationSASL
        expect_protocol_violation(&mut socket, &attack, what).await;
    }

    let open = start_with(&broker, ServerConfig::default()).await;
    let mut parse_without_types = b"\0SELECT 1\0".to_vec();
    parse_without_types.extend_from_slice(&u16::MAX.to_be_bytes());
    let mut bind_past_end = b"\0\0".to_vec();
    bind_past_end.extend_from_slice(&0u16.to_be_bytes());
    bind_past_end.extend_from_slice(&1u16.to_be_bytes());
    bind_past_end.extend_from_slice(&1000i32.to_be_bytes());
    bind_past_end.extend_from_slice(b"ab");
    bind_past_end.extend_from_slice(&0u16.to_be_bytes());
    let after_login = [
        (
            "Parse declaring 65535 parameter types and sending none",
            message(b'P', &parse_without_types),
        ),
        (
            "Bind whose value runs past the message",
            message(b'B', &bind_past_end),
        ),
        ("Execute without its row count", message(b'E', b"\0")),
        (
            "a message claiming a negative length",
            b"Q\xff\xff\xff\xf0".to_vec(),
        ),
        ("an unknown message type", message(b'!', b"")),
    ];
    for (what, attack) in after_login {
        let mut socket = TcpStream::connect(open.address).await.expect("connect");
        socket
            .write_all(&startup_packet("ktable"))
            .await
            .expect("startup");
        read_until(&mut socket, b'Z').await; // ReadyForQuery
        expect_protocol_violation(&mut socket, &attack, what).await;
    }

    // Both servers still serve real clients.
    login(&scram, true)
        .await
        .simple_query("SELECT 1")
        .await
        .expect("served");
    login(&open, false)
        .await
        .simple_query("SELECT 1")
        .await
        .expect("served");
}
