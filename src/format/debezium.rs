//! Debezium change events in JSON: the envelope opened around the JSON decoder.
//!
//! An event is `{"before", "after", "op", "source", ...}`, wrapped in
//! `{"schema", "payload"}` when Kafka Connect's JSON converter has schemas enabled.
//! `c` (create), `r` (snapshot read) and `u` (update) upsert `after`; `d` deletes the
//! key (the tombstone Debezium writes after it is then a no-op on a missing key). Only
//! the envelope is parsed here, borrowing `after` as raw JSON; the rows themselves go
//! through [`JsonDecoder`]'s batch path like plain JSON values. Where the event's
//! schema names fields that Kafka Connect encodes (base64 decimals, microsecond
//! timestamps), `after` is rewritten first (see `connect_json`).

use super::connect_json::Rewrites;
use super::{DecodeError, DecodeOutcome, JsonDecoder, RawRecord, RecordDecoder};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow)]
    after: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
}

/// What of the event's `source` block the metadata columns show. Read only when a
/// table declares them, and leniently: a `source` of another shape (another
/// connector's, or not Debezium's at all) gives NULLs, never a rejected row.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Source {
    ts_ms: Option<i64>,
    lsn: Option<i64>,
}

impl Source {
    fn read(source: Option<&str>) -> Self {
        #[derive(Deserialize)]
        struct Fields {
            ts_ms: Option<serde_json::Value>,
            lsn: Option<serde_json::Value>,
        }
        let fields = source.and_then(|text| serde_json::from_str::<Fields>(text).ok());
        let integer = |v: Option<serde_json::Value>| v.and_then(|v| v.as_i64());
        fields.map_or_else(Self::default, |f| Self {
            ts_ms: integer(f.ts_ms),
            lsn: integer(f.lsn),
        })
    }
}

enum Opened<'a> {
    /// The row after the change, the event's schema when it carries one, its `op`
    /// and source.
    Row {
        after: &'a [u8],
        schema: Option<&'a str>,
        op: char,
        source: Option<&'a str>,
    },
    Delete,
}

/// The columns a table may declare to see each row's last change: `_op` (`r`, `c` or
/// `u`), `_source_ts_ms` (when the database made it, ms since the epoch) and `_lsn`
/// (the PostgreSQL log position; NULL for other databases).
const METADATA_COLUMNS: [&str; 3] = ["_op", "_source_ts_ms", "_lsn"];

fn open(value: &[u8]) -> Result<Opened<'_>, String> {
    let event: Event<'_> =
        serde_json::from_slice(value).map_err(|e| format!("not a Debezium JSON event: {e}"))?;
    let (event, schema) = match (event.op.is_none(), event.payload) {
        (true, Some(payload)) => (
            serde_json::from_str::<Event<'_>>(payload.get())
                .map_err(|e| format!("not a Debezium JSON event payload: {e}"))?,
            event.schema.map(RawValue::get),
        ),
        _ => (event, None),
    };
    match event.op.as_deref() {
        Some("d") => Ok(Opened::Delete),
        Some(op @ ("c" | "r" | "u")) => match event.after {
            Some(after) if after.get() != "null" => Ok(Opened::Row {
                after: after.get().as_bytes(),
                schema,
                op: op.chars().next().unwrap_or('u'),
                source: event.source.map(RawValue::get),
            }),
            _ => Err("a Debezium create/read/update event has no 'after'".into()),
        },
        Some(other) => Err(format!("Debezium op '{other}' is not a row change")),
        None => Err("not a Debezium event: no 'op'".into()),
    }
}

/// Decodes Debezium JSON events: `after` as the row, `d` as a delete.
pub struct DebeziumJsonDecoder {
    rows: JsonDecoder,
    /// The rewrites of the last schema seen, with its text: a topic's events repeat
    /// one schema until the captured table changes.
    rewrites: Option<(String, Rewrites)>,
    /// Whether the table declares any of [`METADATA_COLUMNS`].
    metadata: bool,
}

impl DebeziumJsonDecoder {
    /// Rows are decoded by `rows`.
    pub fn new(rows: JsonDecoder) -> Self {
        let metadata = METADATA_COLUMNS.iter().any(|name| rows.reads_field(name));
        Self {
            rows,
            rewrites: None,
            metadata,
        }
    }

    /// `after` as the JSON decoder reads it, given the event's schema, with the
    /// event's metadata as fields when the table declares them.
    fn row<'a>(
        &mut self,
        after: &'a [u8],
        schema: Option<&str>,
        op: char,
        source: Option<&str>,
    ) -> Result<Cow<'a, [u8]>, String> {
        let mut row = Cow::Borrowed(after);
        if let Some(schema) = schema {
            let known = matches!(&self.rewrites, Some((text, _)) if text == schema);
            if !known {
                self.rewrites = Some((schema.to_string(), Rewrites::of_envelope(schema)?));
            }
            if let Some((_, rewrites)) = &self.rewrites {
                if !rewrites.is_empty() {
                    row = Cow::Owned(rewrites.apply(after)?);
                }
            }
        }
        if self.metadata {
            row = Cow::Owned(with_metadata(&row, op, Source::read(source))?);
        }
        Ok(row)
    }
}

/// `row` (a JSON object's text) with the metadata fields added before its closing brace.
fn with_metadata(row: &[u8], op: char, source: Source) -> Result<Vec<u8>, String> {
    let body = row.trim_ascii_end();
    let Some(open) = body.strip_suffix(b"}") else {
        return Err("'after' is not an object".into());
    };
    let empty = open.trim_ascii() == b"{";
    let number = |n: Option<i64>| n.map_or_else(|| "null".to_string(), |n| n.to_string());
    let fields = format!(
        "{}\"_op\":\"{op}\",\"_source_ts_ms\":{},\"_lsn\":{}}}",
        if empty { "" } else { "," },
        number(source.ts_ms),
        number(source.lsn)
    );
    let mut out = Vec::with_capacity(open.len() + fields.len());
    out.extend_from_slice(open);
    out.extend_from_slice(fields.as_bytes());
    Ok(out)
}

impl RecordDecoder for DebeziumJsonDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, DecodeError> {
        let mut rows = Vec::with_capacity(records.len());
        let mut origin = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        let mut deletes = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let row = open(record.value).and_then(|opened| match opened {
                Opened::Row {
                    after,
                    schema,
                    op,
                    source,
                } => self.row(after, schema, op, source).map(Some),
                Opened::Delete => Ok(None),
            });
            match row {
                Ok(Some(row)) => {
                    rows.push(row);
                    origin.push(i);
                }
                Ok(None) => deletes.push(i),
                Err(reason) => rejected.push((i, reason)),
            }
        }
        let inner: Vec<RawRecord<'_>> = rows
            .iter()
            .zip(&origin)
            .map(|(row, &i)| RawRecord {
                value: row,
                ..records[i]
            })
            .collect();
        let outcome = self.rows.decode(&inner)?;
        rejected.extend(
            outcome
                .rejected
                .into_iter()
                .map(|(i, reason)| (origin[i], reason)),
        );
        rejected.sort_by_key(|(i, _)| *i);
        Ok(DecodeOutcome {
            batch: outcome.batch,
            accepted: outcome.accepted.into_iter().map(|i| origin[i]).collect(),
            rejected,
            deletes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_open_with_and_without_the_schema_wrapper() {
        let plain = br#"{"before": null, "after": {"id": 1, "name": "a"}, "op": "c", "source": {"ts_ms": 1}}"#;
        assert!(
            matches!(open(plain), Ok(Opened::Row { after, schema: None, op: 'c', source: Some(r#"{"ts_ms": 1}"#) }) if after == br#"{"id": 1, "name": "a"}"#)
        );
        let wrapped = br#"{"schema": {"type": "struct"}, "payload": {"before": {"id": 1}, "after": null, "op": "d"}}"#;
        assert!(matches!(open(wrapped), Ok(Opened::Delete)));
        assert!(open(br#"{"op": "t"}"#).is_err());
        assert!(open(br#"{"op": "u", "after": null}"#).is_err());
        assert!(open(b"[1]").is_err());
    }

    #[test]
    fn a_source_of_another_shape_gives_nulls() {
        let odd = br#"{"op": "c", "after": {"id": 1}, "source": "web"}"#;
        let Ok(Opened::Row { source, .. }) = open(odd) else {
            panic!("an event with a string source opens");
        };
        assert_eq!(Source::read(source), Source::default());
        let postgres = Some(r#"{"ts_ms": 17, "lsn": 99, "db": "x"}"#);
        let read = Source::read(postgres);
        assert_eq!((read.ts_ms, read.lsn), (Some(17), Some(99)));
        let sql_server = Some(r#"{"ts_ms": 17, "change_lsn": "00000027:00000758:0003"}"#);
        assert_eq!(Source::read(sql_server).lsn, None);
    }

    #[test]
    fn metadata_fields_join_the_row() {
        let source = Source {
            ts_ms: Some(1700),
            lsn: None,
        };
        let row = with_metadata(br#"{"id": 1}"#, 'u', source).unwrap();
        assert_eq!(
            String::from_utf8(row).unwrap(),
            r#"{"id": 1,"_op":"u","_source_ts_ms":1700,"_lsn":null}"#
        );
        let empty = with_metadata(b"{ }", 'r', Source::default()).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"_op": "r", "_source_ts_ms": null, "_lsn": null})
        );
        assert!(with_metadata(b"[1]", 'c', source).is_err());
    }
}
