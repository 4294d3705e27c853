//! Source DDL: `CREATE TABLE ... WITH (topic = ...)`, `CREATE STREAM`, `DROP`.
//!
//! Statements are parsed with DataFusion's SQL parser (PostgreSQL dialect). `STREAM` is
//! not SQL, so `CREATE STREAM` and `DROP STREAM` are parsed as their `TABLE` forms and
//! remembered as streams. A `CREATE TABLE` without a `WITH (topic = ...)` clause is not a
//! source: it is left to DataFusion (memory tables, `CREATE TABLE ... AS SELECT`).

use super::types::{column_type, ColumnType};
use crate::format::{
    ColumnSource, Envelope, ErrorPolicy, FormatSpec, KeyFormat, MetadataField, SourceSchema,
    ValueFormat,
};
use crate::stream::Retention;
use arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, CreateTableOptions, Expr, Ident, ObjectName, ObjectType, SqlOption,
    Statement, TableConstraint, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// A compacted topic: one row per key.
    Table,
    /// An append-only topic: its retained records.
    Stream,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Table => "table",
            SourceKind::Stream => "stream",
        })
    }
}

/// A declared source.
#[derive(Debug, Clone)]
pub struct SourceDef {
    /// The relation name queries use.
    pub name: String,
    /// Table or stream.
    pub kind: SourceKind,
    /// The Kafka topic.
    pub topic: String,
    /// The value format (`json`, `avro`).
    pub format: String,
    /// Columns and where they come from.
    pub schema: Arc<SourceSchema>,
    /// What a stream keeps (unused by tables).
    pub retention: Retention,
    /// The most bytes the table may hold (`memory_limit`), overriding the server's
    /// `table_memory_limit`; tables only (a stream's bound is its retention).
    pub memory_limit: Option<usize>,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
}

/// A source statement.
#[derive(Debug, Clone)]
pub enum Ddl {
    /// `CREATE TABLE|STREAM`.
    Create(SourceDef),
    /// `DROP TABLE|STREAM [IF EXISTS] names`.
    Drop {
        /// `Stream` for `DROP STREAM`; `DROP TABLE` drops tables (sources or not).
        kind: SourceKind,
        /// The relations to drop.
        names: Vec<String>,
        /// `IF EXISTS` was given.
        if_exists: bool,
    },
}

/// A source statement that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DdlError {
    /// Not valid SQL.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Valid SQL that does not declare a valid source.
    #[error("{0}")]
    Invalid(String),
    /// SQL that would take too long to parse (see [`Refusal::TooComplex`](super::Refusal)).
    #[error("statement too complex: parsing it would take too long")]
    TooComplex,
}

const OPTIONS: &[&str] = &[
    "topic",
    "format",
    "on_error",
    "retention",
    "retention_rows",
    "retention_bytes",
    "key_format",
    "schema_registry",
    "envelope",
    "message",
    "memory_limit",
];

/// Parses `sql` if it is a source statement; `Ok(None)` for anything else.
pub fn parse(sql: &str) -> Result<Option<Ddl>, DdlError> {
    let (text, stream) = stream_as_table(sql);
    let Some(first) = leading_words(&text).first().cloned() else {
        return Ok(None);
    };
    if first != "CREATE" && first != "DROP" {
        return Ok(None);
    }
    let mut statements = super::dialect::parse_postgres(&text)
        .ok_or(DdlError::TooComplex)?
        .map_err(|e| DdlError::Syntax(e.to_string()))?;
    if statements.len() != 1 {
        return Err(DdlError::Invalid("expected one statement".into()));
    }
    let kind = if stream {
        SourceKind::Stream
    } else {
        SourceKind::Table
    };
    match statements.remove(0) {
        Statement::CreateTable(create) => {
            let has_options =
                matches!(&create.table_options, CreateTableOptions::With(o) if !o.is_empty());
            if kind == SourceKind::Table && !has_options {
                return Ok(None);
            }
            create_source(create, kind).map(|def| Some(Ddl::Create(def)))
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } => Ok(Some(Ddl::Drop {
            kind,
            names: names.iter().map(object_name).collect::<Result<_, _>>()?,
            if_exists,
        })),
        _ => Ok(None),
    }
}

/// The first two words of a statement, upper-cased, skipping comments.
fn leading_words(sql: &str) -> Vec<String> {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Vec::new();
    };
    tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(2)
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

/// `CREATE STREAM`/`DROP STREAM` rewritten to their `TABLE` forms, and whether it was one.
fn stream_as_table(sql: &str) -> (String, bool) {
    let words = leading_words(sql);
    let is_stream =
        words.len() == 2 && (words[0] == "CREATE" || words[0] == "DROP") && words[1] == "STREAM";
    if !is_stream {
        return (sql.to_string(), false);
    }
    // Replace the first STREAM word after the leading comments.
    let lower = sql.to_ascii_lowercase();
    let verb = if words[0] == "CREATE" {
        "create"
    } else {
        "drop"
    };
    let Some(verb_at) = find_word(&lower, verb, 0) else {
        return (sql.to_string(), false);
    };
    match find_word(&lower, "stream", verb_at + verb.len()) {
        Some(at) => (
            format!("{}TABLE{}", &sql[..at], &sql[at + "stream".len()..]),
            true,
        ),
        None => (sql.to_string(), false),
    }
}

/// The byte offset of `word` as a whole word in `text`, at or after `from`.
fn find_word(text: &str, word: &str, from: usize) -> Option<usize> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut start = from;
    while let Some(found) = text[start..].find(word) {
        let at = start + found;
        let before = text[..at].chars().next_back().is_none_or(|c| !is_word(c));
        let after = text[at + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_word(c));
        if before && after {
            return Some(at);
        }
        start = at + word.len();
    }
    None
}

/// Identifiers follow SQL: unquoted ones are lower-cased, quoted ones kept.
fn ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

fn object_name(name: &ObjectName) -> Result<String, DdlError> {
    match name.0.as_slice() {
        // PostgreSQL's words for `""`: no relation can be named by nothing.
        [part] if part.as_ident().is_some_and(|i| i.value.is_empty()) => {
            Err(DdlError::Syntax("zero-length delimited identifier".into()))
        }
        [part] => part
            .as_ident()
            .map(ident)
            .ok_or_else(|| DdlError::Invalid(format!("invalid name {name}"))),
        _ => Err(DdlError::Invalid(format!(
            "sources live in the default schema: use a plain name instead of {name}"
        ))),
    }
}

fn create_source(create: CreateTable, kind: SourceKind) -> Result<SourceDef, DdlError> {
    let name = object_name(&create.name)?;
    if create.query.is_some() {
        return Err(DdlError::Invalid(format!(
            "{kind} {name}: a source is declared with columns, not AS SELECT"
        )));
    }
    let options = options(&create.table_options)?;
    let topic = options
        .get("topic")
        .cloned()
        .ok_or_else(|| DdlError::Invalid(format!("{kind} {name} needs WITH (topic = '...')")))?;
    let format = options
        .get("format")
        .cloned()
        .unwrap_or_else(|| "json".into());
    let format_spec = format_spec(&options, &format, kind, create.columns.is_empty())
        .map_err(|e| DdlError::Invalid(format!("{kind} {name}: {e}")))?;
    let on_error = match options.get("on_error") {
        None => ErrorPolicy::default(),
        Some(policy) => ErrorPolicy::parse(policy).ok_or_else(|| {
            DdlError::Invalid(format!(
                "{kind} {name}: on_error must be 'skip', 'null' or 'fail', not '{policy}'"
            ))
        })?,
    };
    let retention = retention(&options, kind, &name)?;
    let memory_limit = match (options.get("memory_limit"), kind) {
        (None, _) => None,
        (Some(_), SourceKind::Stream) => {
            return Err(DdlError::Invalid(format!(
                "stream {name}: memory_limit applies to tables; bound a stream with retention_bytes"
            )))
        }
        (Some(value), SourceKind::Table) => {
            Some(crate::config::parse_byte_size(value).map_err(|e| {
                DdlError::Invalid(format!("table {name}: invalid memory_limit '{value}': {e}"))
            })?)
        }
    };

    let mut primary_keys: Vec<String> = create
        .constraints
        .iter()
        .filter_map(|c| match c {
            TableConstraint::PrimaryKey(pk) => Some(
                pk.columns
                    .iter()
                    .map(|c| c.column.expr.to_string().to_ascii_lowercase())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    for column in &create.columns {
        if column
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
        {
            primary_keys.push(ident(&column.name));
        }
    }
    if format_spec.columns_from_registry {
        if !primary_keys.is_empty() {
            return Err(DdlError::Invalid(format!(
                "{kind} {name}: a PRIMARY KEY needs declared columns"
            )));
        }
        let schema = SourceSchema::new(Vec::new(), on_error)
            .map_err(|e| DdlError::Invalid(format!("{kind} {name}: {e}")))?
            .with_format(format_spec);
        return Ok(SourceDef {
            name,
            kind,
            topic,
            format: format.to_ascii_lowercase(),
            schema: Arc::new(schema),
            retention,
            memory_limit,
            if_not_exists: create.if_not_exists,
        });
    }
    match (kind, primary_keys.len()) {
        (SourceKind::Table, 1) => {}
        (SourceKind::Table, 0) => {
            return Err(DdlError::Invalid(format!(
                "table {name} needs a PRIMARY KEY column: it holds the Kafka message key"
            )))
        }
        (SourceKind::Table, _)
            if !matches!(
                format_spec.key,
                KeyFormat::Json | KeyFormat::Avro | KeyFormat::Protobuf
            ) =>
        {
            return Err(DdlError::Invalid(format!(
                "table {name}: a PRIMARY KEY of several columns is read from a struct key: \
                 key_format = 'json', 'avro' or 'protobuf'"
            )))
        }
        (SourceKind::Table, _) => {}
        (SourceKind::Stream, 0) => {}
        (SourceKind::Stream, _) => {
            return Err(DdlError::Invalid(format!(
                "stream {name} has no PRIMARY KEY; a column named _key shows the message key"
            )))
        }
    }

    let mut columns = Vec::with_capacity(create.columns.len());
    for column in &create.columns {
        let column_name = ident(&column.name);
        let storage = column_type(&column.data_type)
            .map_err(|e| DdlError::Invalid(format!("{kind} {name}, column {column_name}: {e}")))?;
        let is_key = primary_keys.contains(&column_name);
        let (data_type, source) = match (storage, is_key) {
            (ColumnType::Arrow(t), true) if crate::table::columnar::is_key_type(&t) => {
                (t, ColumnSource::Key)
            }
            (_, true) => {
                return Err(DdlError::Invalid(format!(
                    "table {name}: PRIMARY KEY column {column_name} must be TEXT, INT or BIGINT"
                )))
            }
            (ColumnType::Json, false) => (DataType::Utf8, ColumnSource::RawJson),
            (ColumnType::Arrow(t), false) => match MetadataField::from_column_name(&column_name) {
                Some(meta) => (t, ColumnSource::Metadata(meta)),
                None => (t, ColumnSource::Field),
            },
        };
        columns.push((column_name, data_type, source));
    }
    let declared_keys = columns
        .iter()
        .filter(|(_, _, s)| *s == ColumnSource::Key)
        .count();
    if declared_keys != primary_keys.len() && kind == SourceKind::Table {
        return Err(DdlError::Invalid(format!(
            "table {name}: PRIMARY KEY ({}) names a column that is not declared",
            primary_keys.join(", ")
        )));
    }
    let schema = SourceSchema::new(columns, on_error)
        .map_err(|e| DdlError::Invalid(format!("{kind} {name}: {e}")))?
        .with_format(format_spec);
    Ok(SourceDef {
        name,
        kind,
        topic,
        format: format.to_ascii_lowercase(),
        schema: Arc::new(schema),
        retention,
        memory_limit,
        if_not_exists: create.if_not_exists,
    })
}

/// The `format`, `key_format`, `envelope` and `schema_registry` options.
fn format_spec(
    options: &BTreeMap<String, String>,
    format: &str,
    kind: SourceKind,
    no_columns: bool,
) -> Result<FormatSpec, String> {
    let value = match format.to_ascii_lowercase().as_str() {
        "json" => ValueFormat::Json,
        "avro" => ValueFormat::Avro,
        "json_sr" => ValueFormat::JsonSr,
        "protobuf" => ValueFormat::Protobuf,
        _ => {
            return Err(format!(
                "format '{format}' is not supported (supported: json, json_sr, avro, protobuf)"
            ))
        }
    };
    let key = match options.get("key_format").map(|k| k.to_ascii_lowercase()) {
        None => KeyFormat::Text,
        Some(k) => match k.as_str() {
            "text" | "string" => KeyFormat::Text,
            "json" => KeyFormat::Json,
            "avro" => KeyFormat::Avro,
            "protobuf" => KeyFormat::Protobuf,
            "int" | "integer" => KeyFormat::Int,
            "bigint" | "long" => KeyFormat::BigInt,
            "bytes" | "bytea" => KeyFormat::Bytes,
            other => {
                return Err(format!(
                    "key_format '{other}' is not supported (supported: text, json, avro, protobuf, int, bigint, bytes)"
                ))
            }
        },
    };
    if key != KeyFormat::Text && kind == SourceKind::Stream {
        return Err(
            "key_format applies to tables; a stream's _key column is the key as text".into(),
        );
    }
    let envelope = match options.get("envelope").map(|e| e.to_ascii_lowercase()) {
        None => Envelope::None,
        Some(e) => match e.as_str() {
            "none" => Envelope::None,
            "debezium" => Envelope::Debezium,
            other => {
                return Err(format!(
                    "envelope '{other}' is not supported (supported: none, debezium)"
                ))
            }
        },
    };
    if no_columns && !matches!(value, ValueFormat::Avro | ValueFormat::Protobuf) {
        return Err(
            "columns are needed (only Avro and Protobuf sources take them from the schema \
             registry)"
                .into(),
        );
    }
    if value == ValueFormat::Protobuf && envelope == Envelope::Debezium {
        return Err("envelope = 'debezium' reads JSON or Avro events, not Protobuf".into());
    }
    let message = options.get("message").cloned();
    if message.is_some() && value != ValueFormat::Protobuf {
        return Err("the message option names a Protobuf message: format = 'protobuf'".into());
    }
    Ok(FormatSpec {
        value,
        key,
        envelope,
        registry_url: options.get("schema_registry").cloned(),
        columns_from_registry: no_columns,
        message,
        keyed: kind == SourceKind::Table,
        ..FormatSpec::default()
    })
}

fn options(table_options: &CreateTableOptions) -> Result<BTreeMap<String, String>, DdlError> {
    let CreateTableOptions::With(list) = table_options else {
        return Ok(BTreeMap::new());
    };
    let mut options = BTreeMap::new();
    for option in list {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(DdlError::Invalid(format!("unsupported option {option}")));
        };
        let key = key.value.to_ascii_lowercase();
        if !OPTIONS.contains(&key.as_str()) {
            return Err(DdlError::Invalid(format!(
                "unknown option '{key}' (known: {})",
                OPTIONS.join(", ")
            )));
        }
        let value = match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                Value::Number(n, _) => n.to_string(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        };
        options.insert(key, value);
    }
    Ok(options)
}

fn retention(
    options: &BTreeMap<String, String>,
    kind: SourceKind,
    name: &str,
) -> Result<Retention, DdlError> {
    let given = ["retention", "retention_rows", "retention_bytes"]
        .iter()
        .any(|o| options.contains_key(*o));
    if !given {
        return Ok(Retention::default());
    }
    if kind == SourceKind::Table {
        return Err(DdlError::Invalid(format!(
            "table {name}: retention applies to streams; a table keeps every key"
        )));
    }
    let invalid = |option: &str, value: &str| {
        DdlError::Invalid(format!("stream {name}: invalid {option} '{value}'"))
    };
    Ok(Retention {
        max_age: options
            .get("retention")
            .map(|v| parse_duration(v).ok_or_else(|| invalid("retention", v)))
            .transpose()?,
        max_rows: options
            .get("retention_rows")
            .map(|v| v.parse::<usize>().map_err(|_| invalid("retention_rows", v)))
            .transpose()?,
        max_bytes: options
            .get("retention_bytes")
            .map(|v| parse_bytes(v).ok_or_else(|| invalid("retention_bytes", v)))
            .transpose()?,
    })
}

/// `500ms`, `30s`, `15m`, `1h`, `7d`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => n,
        "s" => n * 1_000,
        "m" | "min" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

/// `1048576`, `512KB`, `64MB`, `2GB` (powers of 1024).
fn parse_bytes(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_uppercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: usize = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(sql: &str) -> SourceDef {
        match parse(sql) {
            Ok(Some(Ddl::Create(def))) => def,
            other => panic!("expected a source, got {other:?}"),
        }
    }

    fn error(sql: &str) -> String {
        match parse(sql) {
            Err(e) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_table_with_key_metadata_and_json_columns() {
        let def = create(
            "-- users\nCREATE TABLE Users (id TEXT PRIMARY KEY, name VARCHAR, age INT, profile JSONB, \
             _offset BIGINT, _timestamp TIMESTAMP) WITH (topic = 'users', format = 'json', on_error = 'null')",
        );
        assert_eq!(
            (def.name.as_str(), def.kind, def.topic.as_str()),
            ("users", SourceKind::Table, "users")
        );
        assert_eq!(def.schema.on_error(), ErrorPolicy::Null);
        assert_eq!(
            def.schema.sources(),
            &[
                ColumnSource::Key,
                ColumnSource::Field,
                ColumnSource::Field,
                ColumnSource::RawJson,
                ColumnSource::Metadata(MetadataField::Offset),
                ColumnSource::Metadata(MetadataField::Timestamp),
            ]
        );
    }

    #[test]
    fn a_stream_with_retention() {
        let def = create(
            "create stream orders (order_id TEXT, amount DOUBLE PRECISION, _key TEXT) \
             WITH (topic = 'orders', retention = '1h', retention_rows = 5000)",
        );
        assert_eq!(def.kind, SourceKind::Stream);
        assert_eq!(def.retention.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(def.retention.max_rows, Some(5000));
        assert_eq!(def.schema.key_index(), None);
    }

    #[test]
    fn an_empty_name_is_refused() {
        for sql in [
            "CREATE TABLE \"\" (id TEXT PRIMARY KEY) WITH (topic = 't')",
            "CREATE STREAM \"\" (v INT) WITH (topic = 't')",
            "DROP STREAM \"\"",
        ] {
            assert!(error(sql).contains("zero-length"), "{sql}");
        }
    }

    #[test]
    fn primary_key_as_a_table_constraint() {
        let def = create("CREATE TABLE t (id TEXT, v INT, PRIMARY KEY (id)) WITH (topic = 't')");
        assert_eq!(def.schema.key_index(), Some(0));
    }

    #[test]
    fn drop_and_passthrough() {
        assert!(matches!(
            parse("DROP STREAM IF EXISTS orders"),
            Ok(Some(Ddl::Drop {
                kind: SourceKind::Stream,
                if_exists: true,
                ..
            }))
        ));
        assert!(matches!(
            parse("drop table a, b"),
            Ok(Some(Ddl::Drop {
                kind: SourceKind::Table,
                ..
            }))
        ));
        assert!(matches!(parse("SELECT 1"), Ok(None)));
        assert!(
            matches!(parse("CREATE TABLE m (a INT)"), Ok(None)),
            "memory tables go to DataFusion"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(error("CREATE TABLE t (id TEXT, v INT) WITH (topic = 't')").contains("PRIMARY KEY"));
        assert!(
            error("CREATE TABLE t (id DOUBLE PRECISION PRIMARY KEY) WITH (topic = 't')")
                .contains("must be TEXT, INT or BIGINT")
        );
        assert!(
            error("CREATE TABLE t (id TEXT PRIMARY KEY) WITH (topik = 't')")
                .contains("unknown option")
        );
        assert!(
            error("CREATE TABLE t (id TEXT PRIMARY KEY) WITH (format = 'json')").contains("topic")
        );
        assert!(
            error("CREATE TABLE t (id TEXT PRIMARY KEY) WITH (topic = 't', format = 'xml')")
                .contains("xml")
        );
        assert!(error(
            "CREATE TABLE t (id TEXT PRIMARY KEY) WITH (topic = 't', key_format = 'u8')"
        )
        .contains("key_format"));
        assert!(error("CREATE TABLE t WITH (topic = 't')").contains("columns are needed"));
        assert!(
            error("CREATE TABLE t (id TEXT PRIMARY KEY, b BYTEA) WITH (topic = 't')")
                .contains("not supported")
        );
        assert!(
            error("CREATE STREAM s (id TEXT PRIMARY KEY) WITH (topic = 's')")
                .contains("no PRIMARY KEY")
        );
        assert!(
            error("CREATE STREAM s (a INT) WITH (topic = 's', retention = 'soon')")
                .contains("retention")
        );
        assert!(
            error("CREATE TABLE t (id TEXT PRIMARY KEY, _offset INT) WITH (topic = 't')")
                .contains("_offset")
        );
        assert!(
            error("CREATE TABLE t (id TEXT PRIMARY KEY WITH (topic = 't')")
                .starts_with("syntax error")
        );
    }

    #[test]
    fn formats_keys_envelopes_and_registries() {
        let def = create(
            "CREATE TABLE t (id TEXT PRIMARY KEY, v INT) WITH (topic = 't', format = 'avro', \
             key_format = 'json', envelope = 'debezium', schema_registry = 'http://r:8081')",
        );
        let format = def.schema.format();
        assert_eq!(format.value, ValueFormat::Avro);
        assert_eq!(format.key, KeyFormat::Json);
        assert_eq!(format.envelope, Envelope::Debezium);
        assert_eq!(format.registry_url.as_deref(), Some("http://r:8081"));
        assert!(!format.columns_from_registry);
        let bare =
            create("CREATE TABLE t WITH (topic = 't', format = 'avro', key_format = 'avro')");
        assert!(bare.schema.format().columns_from_registry);
        assert!(bare.schema.format().keyed);
        assert_eq!(bare.schema.arrow().fields().len(), 0);
    }

    #[test]
    fn protobuf_values_and_keys() {
        let bare = create(
            "CREATE TABLE t WITH (topic = 't', format = 'protobuf', key_format = 'protobuf', \
             message = 'shop.Order')",
        );
        let format = bare.schema.format();
        assert_eq!(format.value, ValueFormat::Protobuf);
        assert_eq!(format.key, KeyFormat::Protobuf);
        assert_eq!(format.message.as_deref(), Some("shop.Order"));
        assert!(format.columns_from_registry && format.needs_registry());
        let composite = create(
            "CREATE TABLE t (tenant TEXT, id INT, PRIMARY KEY (tenant, id)) \
             WITH (topic = 't', format = 'protobuf', key_format = 'protobuf')",
        );
        assert_eq!(composite.schema.key_indices(), vec![0, 1]);
        assert!(error(
            "CREATE TABLE t (id TEXT PRIMARY KEY) WITH (topic = 't', format = 'protobuf', \
             envelope = 'debezium')"
        )
        .contains("not Protobuf"));
        assert!(
            error("CREATE TABLE t (id TEXT PRIMARY KEY) WITH (topic = 't', message = 'M')")
                .contains("format = 'protobuf'")
        );
    }

    #[test]
    fn composite_keys_need_a_struct_key_format() {
        let def = create(
            "CREATE TABLE t (tenant TEXT, id INT, v INT, PRIMARY KEY (tenant, id)) \
             WITH (topic = 't', key_format = 'json')",
        );
        assert_eq!(def.schema.key_indices(), vec![0, 1]);
        assert!(
            error("CREATE TABLE t (a TEXT, b INT, PRIMARY KEY (a, b)) WITH (topic = 't')")
                .contains("struct key")
        );
        assert!(error(
            "CREATE TABLE t (a TEXT, PRIMARY KEY (a, b)) WITH (topic = 't', key_format = 'json')"
        )
        .contains("not declared"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_bytes("64MB"), Some(64 << 20));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("1TB"), None);
    }
}
