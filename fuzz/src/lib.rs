//! What each fuzz target does with its input, apart from libFuzzer so that
//! `tests/it/fuzz_corpus.rs` replays the corpora through the very same code on the
//! normal build (a sanitizer build recompiles DataFusion: too slow for CI).
//!
//! Each function must never panic, whatever the bytes; where the code under test
//! promises more (every record accounted for), it asserts that too.

use ktable::format::{JsonDecoder, RawRecord};
use ktable::sql::{parse_ddl, split_script, Ddl, Engine, EngineConfig, KafkaTableProvider};
use ktable::table::columnar::ColumnarTable;
use std::sync::{Arc, OnceLock};

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

/// JSON record values, one per line of `data`, each keyed, decoded as one batch:
/// every record is either a row or rejected, never both, never lost.
pub fn json_records(data: &[u8]) {
    static DEF: OnceLock<ktable::sql::SourceDef> = OnceLock::new();
    let def = DEF.get_or_init(users);
    let values: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let records: Vec<RawRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, value)| RawRecord {
            // The first line's key is the line itself: keys are untrusted bytes too.
            key: Some(if i == 0 { value } else { b"k".as_slice() }),
            value,
            partition: 0,
            offset: i as i64,
            timestamp: None,
            headers: None,
        })
        .collect();
    let mut decoder = JsonDecoder::new(Arc::clone(&def.schema));
    if let Ok(outcome) = decoder.decode(&records) {
        assert_eq!(outcome.batch.num_rows(), outcome.accepted.len());
        let mut seen: Vec<usize> = outcome
            .accepted
            .iter()
            .copied()
            .chain(outcome.rejected.iter().map(|(i, _)| *i))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..records.len()).collect::<Vec<_>>());
    }
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
/// planner and the point-lookup recognizer, over a `users` table. Statements are
/// prepared, never run.
pub fn sql_statement(data: &[u8]) {
    static ENGINE: OnceLock<(tokio::runtime::Runtime, Engine)> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (runtime, engine) = ENGINE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a Tokio runtime");
        // No broker is ever contacted: nothing is run.
        let engine = Engine::new(EngineConfig::new("127.0.0.1:9"));
        let def = users();
        let key = def.schema.key_index().expect("users has a key");
        let table = Arc::new(ColumnarTable::new(Arc::clone(def.schema.arrow()), key));
        engine
            .context()
            .register_table("users", Arc::new(KafkaTableProvider::new(table)))
            .expect("register users");
        (runtime, engine)
    });
    let _ = runtime.block_on(engine.prepare(engine.context(), text));
    let _ = engine.prepare_cached(text);
}
