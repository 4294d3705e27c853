//! The fuzz corpora (`fuzz/corpus/<target>/`), replayed through the fuzz targets'
//! own functions on the normal build: every input that ever found a defect stays a
//! regression test here, without a sanitizer build of DataFusion.

// The targets load the registry fixture as `formats` does: two copies of one small
// module, each private to its user.
#[allow(clippy::duplicate_mod)]
#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::path::PathBuf;

/// Runs `target` on every file of `fuzz/corpus/<name>/`; there must be some.
fn replay(name: &str, target: fn(&[u8])) {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", folder.display());
    for file in files {
        let data = std::fs::read(&file).expect("read a corpus file");
        let replayed = std::panic::catch_unwind(|| target(&data));
        assert!(replayed.is_ok(), "{name} panicked on {}", file.display());
    }
}

#[test]
fn json_records_corpus() {
    replay("json_records", targets::json_records);
}

#[test]
fn avro_records_corpus() {
    replay("avro_records", targets::avro_records);
}

#[test]
fn protobuf_records_corpus() {
    replay("protobuf_records", targets::protobuf_records);
}

#[test]
fn ddl_corpus() {
    replay("ddl", targets::ddl);
}

#[test]
fn sql_statement_corpus() {
    replay("sql_statement", targets::sql_statement);
}

#[test]
fn pgwire_messages_corpus() {
    replay("pgwire_messages", targets::pgwire_messages);
}
