//! What each fuzz target does with its input, apart from libFuzzer so that
//! `tests/it/fuzz_corpus.rs` replays the corpora through the very same code on the
//! normal build (a sanitizer build recompiles DataFusion: too slow for CI).
//!
//! Each function must never panic, whatever the bytes; where the code under test
//! promises more (every record accounted for), it asserts that too.

use datafusion::common::ParamValues;
use futures::StreamExt;
#[path = "../../tests/fixtures/registry.rs"]
mod registry;

use registry::Registry;

use ktable::format::{
    decoder_for, AvroDecoder, JsonDecoder, ProtobufDecoder, RawRecord, RecordDecoder, SourceSchema,
};
use ktable::server::{serve, QueryLimits, ServerConfig};
use ktable::sql::{
    parse_ddl, split_script, Ddl, Engine, EngineConfig, KafkaTableProvider, Output, StatementKind,
};
use ktable::table::columnar::ColumnarTable;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The declaration the JSON target decodes into and the SQL target queries: every
/// column type and a metadata column.
pub const USERS_DDL: &str = "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, \
     age INT, score DOUBLE, born DATE, seen TIMESTAMP, price DECIMAL(10, 2), \
     active BOOLEAN, attrs JSON, _offset BIGINT) WITH (topic = 'users', format = 'json')";

fn users() -> ktable::sql::SourceDef {
    match parse_ddl(USERS_DDL) {
        Ok(Some(Ddl::Create(def))) => def,
        other => panic!("the fuzz schema does not parse: {other:?}"),
    }
}

/// JSON record values, one per line of `data`, each keyed, decoded as one batch, as
/// plain JSON and as Debezium events: every record is either a row, a delete or
/// rejected, never two of these, never lost.
pub fn json_records(data: &[u8]) {
    static DEF: OnceLock<ktable::sql::SourceDef> = OnceLock::new();
    let def = DEF.get_or_init(users);
    let values: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    // The first line's key is the line itself: keys are untrusted bytes too.
    let records = keyed(&values, |i, value| if i == 0 { value } else { b"k" });
    let mut decoder = JsonDecoder::new(Arc::clone(&def.schema));
    if let Ok(outcome) = decoder.decode(&records) {
        assert_each_record_once(&outcome, records.len());
    }
    // The same lines as Debezium change events (envelope, schema-carrying events,
    // Connect's encoded decimals and timestamps).
    static DEBEZIUM: OnceLock<ktable::sql::SourceDef> = OnceLock::new();
    let debezium = DEBEZIUM.get_or_init(|| {
        let ddl = USERS_DDL.replace("format = 'json'", "format = 'json', envelope = 'debezium'");
        match parse_ddl(&ddl) {
            Ok(Some(Ddl::Create(def))) => def,
            other => panic!("the Debezium fuzz schema does not parse: {other:?}"),
        }
    });
    if let Ok(outcome) = decoder_for(&debezium.schema).decode(&records) {
        assert_each_record_once(&outcome, records.len());
    }
}

/// One record per value, at offsets 0, 1, ..., keyed by `key_of(offset, value)`.
fn keyed<'a>(
    values: &[&'a [u8]],
    key_of: impl Fn(usize, &'a [u8]) -> &'a [u8],
) -> Vec<RawRecord<'a>> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| RawRecord {
            key: Some(key_of(i, value)),
            value,
            partition: 0,
            offset: i as i64,
            timestamp: None,
            headers: None,
        })
        .collect()
}

/// What a decoder promises: one row per accepted record, and each of the `count`
/// records accepted, deleting or rejected, exactly once.
fn assert_each_record_once(outcome: &ktable::format::DecodeOutcome, count: usize) {
    assert_eq!(outcome.batch.num_rows(), outcome.accepted.len());
    let mut seen: Vec<usize> = outcome
        .accepted
        .iter()
        .chain(&outcome.deletes)
        .copied()
        .chain(outcome.rejected.iter().map(|(i, _)| *i))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..count).collect::<Vec<_>>());
}

/// Avro record values through the Avro decoder, with schemas from the registry
/// fixture: the bytes as a whole record (the Confluent framing itself fuzzed), framed
/// with the id of version 1 (read as version 2: schema resolution runs), and framed
/// with the id of version 2 (no resolution: the direct reader runs). Every record is a
/// row or rejected, and the decoder gives what its general path alone gives.
pub fn avro_records(data: &[u8]) {
    static TARGET: OnceLock<Option<RegistryTarget>> = OnceLock::new();
    decode_framed(TARGET.get_or_init(avro_target).as_ref(), data);
}

/// Protobuf record values through the Protobuf decoder, as `avro_records` does: whole,
/// and framed with the schema's id and the message index of its first message (nested
/// and repeated fields: the general path) and of its third (scalars only: the direct
/// reader, compared with the general path).
pub fn protobuf_records(data: &[u8]) {
    static TARGET: OnceLock<Option<RegistryTarget>> = OnceLock::new();
    decode_framed(TARGET.get_or_init(protobuf_target).as_ref(), data);
}

/// Decodes `data` whole and behind each of `target`'s framings; every record is
/// accounted for, and the target's reference decoder (if any) agrees.
fn decode_framed(target: Option<&RegistryTarget>, data: &[u8]) {
    let Some(target) = target else {
        panic!("the registry fixture did not start (python3 tests/fixtures/schema_registry.py)");
    };
    let framed: Vec<Vec<u8>> = target
        .framings
        .iter()
        .map(|framing| [framing.as_slice(), data].concat())
        .collect();
    let values: Vec<&[u8]> = std::iter::once(data)
        .chain(framed.iter().map(Vec::as_slice))
        .collect();
    let records = keyed(&values, |_, _| b"k");
    // The registry client is synchronous: decoding needs no runtime.
    let mut decoder = target.decoder.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = decoder.decode(&records);
    if let Ok(outcome) = &outcome {
        assert_each_record_once(outcome, records.len());
    }
    if let Some(reference) = &target.reference {
        let mut reference = reference.lock().unwrap_or_else(|e| e.into_inner());
        assert_same_outcome(&outcome, &reference.decode(&records));
    }
}

/// Two decodes of the same records gave the same rows, rejections and deletes (a
/// rejection that prints an Avro map is compared up to the map: its entries print in
/// hash order).
fn assert_same_outcome(
    a: &Result<ktable::format::DecodeOutcome, ktable::format::DecodeError>,
    b: &Result<ktable::format::DecodeOutcome, ktable::format::DecodeError>,
) {
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(a), Err(b)) => return assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("{a:?} against {b:?}"),
    };
    let comparable = |rejected: &[(usize, String)]| -> Vec<(usize, String)> {
        rejected
            .iter()
            .map(|(i, reason)| (*i, reason.split("Map(").next().unwrap_or("").to_string()))
            .collect()
    };
    assert_eq!(a.accepted, b.accepted);
    assert_eq!(comparable(&a.rejected), comparable(&b.rejected));
    assert_eq!(a.deletes, b.deletes);
    assert_eq!(format!("{:?}", a.batch), format!("{:?}", b.batch));
}

/// A decoder of a table whose schemas are in the registry fixture (alive until the
/// process exits), the bytes that frame a record in each schema it is written with,
/// and a decoder whose answers the first must give (if any).
struct RegistryTarget {
    decoder: std::sync::Mutex<Box<dyn RecordDecoder>>,
    reference: Option<std::sync::Mutex<Box<dyn RecordDecoder>>>,
    framings: Vec<Vec<u8>>,
    _registry: Registry,
}

/// Version 1 of the Avro value schema: every column type of the table, a nested record
/// (read as JSON), an enum the table does not declare, logical types.
const AVRO_V1: &str = r#"{"type": "record", "name": "User", "fields": [
 {"name": "id", "type": "string"},
 {"name": "name", "type": ["null", "string"], "default": null},
 {"name": "age", "type": "int"},
 {"name": "score", "type": "double"},
 {"name": "born", "type": {"type": "int", "logicalType": "date"}},
 {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
 {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
 {"name": "active", "type": "boolean"},
 {"name": "attrs", "type": {"type": "record", "name": "Attrs", "fields": [
   {"name": "tags", "type": {"type": "array", "items": "string"}},
   {"name": "counts", "type": {"type": "map", "values": "long"}}]}},
 {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}}]}"#;

/// Version 2: a field added with a default (what readers of version 1 data resolve).
fn avro_v2() -> String {
    AVRO_V1.replacen(
        r#"{"name": "id", "type": "string"},"#,
        r#"{"name": "id", "type": "string"}, {"name": "nickname", "type": ["null", "string"], "default": null},"#,
        1,
    )
}

fn avro_target() -> Option<RegistryTarget> {
    registry_target(
        |registry| {
            let old = registry.register("avro_users-value", AVRO_V1);
            let latest = registry.register("avro_users-value", &avro_v2());
            let framing = |id: u32| [&[0u8][..], &id.to_be_bytes()].concat();
            vec![framing(old), framing(latest)]
        },
        "avro_users",
        "id TEXT PRIMARY KEY, name TEXT, nickname TEXT, age INT, score DOUBLE, born DATE, \
         seen TIMESTAMP, price DECIMAL(10, 2), active BOOLEAN, attrs JSON",
        "avro",
        |schema| {
            let registry = schema.format().registry.clone()?;
            let general = AvroDecoder::new(Arc::clone(schema), registry).without_direct_plans();
            Some(Box::new(general) as Box<dyn RecordDecoder>)
        },
    )
}

/// The Protobuf value schema: scalar types, a repeated field, a map, a nested message
/// and an enum (these and the bytes not declared as columns: decoded and skipped).
/// Its third message, `Flat`, has scalar fields only: the direct reader reads it.
const PROTO_USER: &str = "syntax = \"proto3\"; package fuzz; \
     message User { string id = 1; optional string name = 2; int32 age = 3; \
     double score = 4; bool active = 5; bytes photo = 6; repeated string tags = 7; \
     map<string, int64> counts = 8; Inner inner = 9; Color color = 10; } \
     message Inner { string note = 1; } enum Color { RED = 0; GREEN = 1; } \
     message Flat { string id = 1; optional string name = 2; sint32 age = 3; \
     double score = 4; bool active = 5; fixed64 big = 6; Color color = 7; bytes photo = 8; }";

fn protobuf_target() -> Option<RegistryTarget> {
    registry_target(
        |registry| {
            let no_imports = serde_json::json!([]);
            let id = registry.register_protobuf("proto_users-value", PROTO_USER, no_imports);
            // Message indexes [0] (the first message) are written as one zero byte;
            // [2] (`Flat`) as the zigzag count 1 and the zigzag index 2.
            vec![
                [&[0u8][..], &id.to_be_bytes(), &[0u8]].concat(),
                [&[0u8][..], &id.to_be_bytes(), &[2u8, 4]].concat(),
            ]
        },
        "proto_users",
        "id TEXT PRIMARY KEY, name TEXT, age INT, score DOUBLE, active BOOLEAN, color TEXT",
        "protobuf",
        |schema| {
            let registry = schema.format().registry.clone()?;
            let general = ProtobufDecoder::new(Arc::clone(schema), registry).without_direct_plans();
            Some(Box::new(general) as Box<dyn RecordDecoder>)
        },
    )
}

/// Starts the registry fixture, registers schemas with `register_schemas` (which
/// returns the framings of records), and prepares a decoder of table `topic` with
/// `columns` in `format`, and the `reference` decoder of its schema.
fn registry_target(
    register_schemas: impl FnOnce(&Registry) -> Vec<Vec<u8>>,
    topic: &str,
    columns: &str,
    format: &str,
    reference: impl FnOnce(&Arc<SourceSchema>) -> Option<Box<dyn RecordDecoder>>,
) -> Option<RegistryTarget> {
    let registry = Registry::start_for_the_process();
    let framings = register_schemas(&registry);
    let ddl = format!(
        "CREATE TABLE {topic} ({columns}) WITH (topic = '{topic}', format = '{format}', \
         schema_registry = '{}')",
        registry.url()
    );
    let Ok(Some(Ddl::Create(def))) = parse_ddl(&ddl) else {
        panic!("the fuzz table does not parse: {ddl}");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let schema = runtime
        .block_on(ktable::format::prepare(def.schema, topic, None))
        .ok()?;
    Some(RegistryTarget {
        decoder: std::sync::Mutex::new(decoder_for(&schema)),
        reference: reference(&schema).map(std::sync::Mutex::new),
        framings,
        _registry: registry,
    })
}

/// Source DDL (`CREATE TABLE ... WITH (...)`, `CREATE STREAM`, `DROP`) and the
/// script splitter that SQL files go through.
pub fn ddl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_ddl(text);
    let _ = split_script(text);
}

/// SQL text through the statement front end: the guard, both parsers, DataFusion's
/// planner and the point-lookup recognizer, over a `users` table. Queries and
/// lookups then run (without parameters) for up to a second and 10,000 rows, as a
/// reader's statement would: a panic while executing is a defect as much as one
/// while planning. Source DDL and subscriptions are prepared, never run (they wait
/// on a broker, or never end).
pub fn sql_statement(data: &[u8]) {
    static ENGINE: OnceLock<(tokio::runtime::Runtime, Engine)> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (runtime, engine) = ENGINE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a Tokio runtime");
        (runtime, engine_with_users())
    });
    let _ = engine.prepare_cached(text);
    let Ok(prepared) = runtime.block_on(engine.prepare(engine.context(), text)) else {
        return;
    };
    if !matches!(
        prepared.kind(),
        StatementKind::Query | StatementKind::PointLookup
    ) {
        return;
    }
    runtime.block_on(async {
        let run = async {
            let no_parameters = ParamValues::List(Vec::new());
            let Ok(Output::Rows(mut rows)) = engine
                .execute(engine.context(), &prepared, no_parameters)
                .await
            else {
                return;
            };
            let mut seen = 0;
            while let Some(Ok(batch)) = rows.next().await {
                seen += batch.num_rows();
                if seen > 10_000 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), run).await;
    });
}

/// An engine over an empty `users` table; no broker is ever contacted. Its memory
/// limits keep a greedy query under libFuzzer's 2 GiB RSS limit.
fn engine_with_users() -> Engine {
    let engine = Engine::new(
        EngineConfig::new("127.0.0.1:9")
            .memory_limit(512 << 20)
            .query_memory_limit(256 << 20),
    );
    let def = users();
    let key = def.schema.key_index().expect("users has a key");
    let table = Arc::new(ColumnarTable::new(Arc::clone(def.schema.arrow()), key));
    engine
        .context()
        .register_table("users", Arc::new(KafkaTableProvider::new(table)))
        .expect("register users");
    engine
}

/// The prefix of the threads the pgwire target's server runs on: a panic on one of
/// them is a defect even though Tokio would only end that connection's task.
const SERVER_THREADS: &str = "fuzz-pgwire";
/// The prefix of the threads the server runs DataFusion's work on
/// (`server::query_runtime`): a panic there only fails one statement, and is a
/// defect all the same.
const QUERY_THREADS: &str = "ktable-query";

/// Panics seen on the server's threads.
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// A client's bytes to a running server (`ktable::server::serve`, no users, an empty
/// `users` table, a 2 s statement limit). The first byte chooses how the rest is
/// sent: odd, after a valid startup message (user `fuzz`), so the rest reaches the
/// message loop (simple and extended protocol, COPY, cancel...); even, as the whole
/// byte stream, startup (or SSL/cancel request) included. The client then closes its
/// side and reads until the server closes the connection. Whatever the bytes, no
/// server thread panics, the server closes the connection within 10 s of the
/// client's end, and a new client is still served.
pub fn pgwire_messages(data: &[u8]) {
    static SERVER: OnceLock<(SocketAddr, Arc<Engine>, tokio::runtime::Handle)> = OnceLock::new();
    let (address, engine, runtime) = SERVER.get_or_init(start_server);
    let address = *address;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = Vec::with_capacity(data.len() + 64);
    if mode % 2 == 1 {
        bytes.extend_from_slice(&startup_message("fuzz"));
    }
    bytes.extend_from_slice(rest);
    let before = SERVER_PANICS.load(Ordering::SeqCst);
    let mut stream = TcpStream::connect(address).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // The server may close before reading everything (a fatal error): a failed
    // write is an answer too.
    let _ = stream.write_all(&bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 8192];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the server kept the connection open 10 s after the client's end")
            }
            // Reset by the server: closed.
            Err(_) => break,
        }
    }
    assert_eq!(
        SERVER_PANICS.load(Ordering::SeqCst),
        before,
        "a server thread panicked"
    );
    assert!(
        still_serves(address),
        "the server no longer answers a query"
    );
    // A source declared by the input waits for a broker that never answers, with a
    // consumer of its own: the next input starts without it.
    for source in engine.sources() {
        let kind = match source.kind {
            ktable::sql::SourceKind::Table => "TABLE",
            ktable::sql::SourceKind::Stream => "STREAM",
        };
        let drop = format!(
            "DROP {kind} IF EXISTS \"{}\"",
            source.name.replace('"', "\"\"")
        );
        let _ = runtime.block_on(engine.sql(&drop));
    }
}

/// A protocol 3.0 startup message for `user` and database `ktable`.
fn startup_message(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (name, value) in [("user", user), ("database", "ktable")] {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

/// Whether a new connection logs in and gets `SELECT 1` answered.
fn still_serves(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut bytes = startup_message("probe");
    let query = b"SELECT 1\0";
    bytes.push(b'Q');
    bytes.extend_from_slice(&((query.len() + 4) as u32).to_be_bytes());
    bytes.extend_from_slice(query);
    bytes.extend_from_slice(&[b'X', 0, 0, 0, 4]);
    if stream.write_all(&bytes).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    // The row's DataRow: one column, "1".
    answer
        .windows(11)
        .any(|w| w == [b'D', 0, 0, 0, 11, 0, 1, 0, 0, 0, 1])
}

fn start_server() -> (SocketAddr, Arc<Engine>, tokio::runtime::Handle) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with(SERVER_THREADS) || name.starts_with(QUERY_THREADS))
        {
            SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let engine = Arc::new(engine_with_users());
    let serving = Arc::clone(&engine);
    let config = ServerConfig {
        listen: address,
        max_connections_per_address: 0,
        authentication_timeout: Duration::from_secs(5),
        limits: QueryLimits {
            timeout: Some(Duration::from_secs(2)),
            max_rows: Some(10_000),
        },
        ..ServerConfig::default()
    };
    runtime.spawn(async move {
        if let Err(error) = serve(serving, &config, std::future::pending()).await {
            panic!("the fuzz server stopped: {error}");
        }
    });
    let handle = runtime.handle().clone();
    // Serving for the life of the process.
    std::mem::forget(runtime);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(address).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fuzz server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (address, engine, handle)
}
