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
    after: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
}

enum Opened<'a> {
    /// The row after the change, and the event's schema when it carries one.
    Row {
        after: &'a [u8],
        schema: Option<&'a str>,
    },
    Delete,
}

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
        Some("c" | "r" | "u") => match event.after {
            Some(after) if after.get() != "null" => Ok(Opened::Row {
                after: after.get().as_bytes(),
                schema,
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
}

impl DebeziumJsonDecoder {
    /// Rows are decoded by `rows`.
    pub fn new(rows: JsonDecoder) -> Self {
        Self {
            rows,
            rewrites: None,
        }
    }

    /// `after` as the JSON decoder reads it, given the event's schema.
    fn row<'a>(&mut self, after: &'a [u8], schema: Option<&str>) -> Result<Cow<'a, [u8]>, String> {
        let Some(schema) = schema else {
            return Ok(Cow::Borrowed(after));
        };
        let known = matches!(&self.rewrites, Some((text, _)) if text == schema);
        if !known {
            self.rewrites = Some((schema.to_string(), Rewrites::of_envelope(schema)?));
        }
        match &self.rewrites {
            Some((_, rewrites)) if !rewrites.is_empty() => rewrites.apply(after).map(Cow::Owned),
            _ => Ok(Cow::Borrowed(after)),
        }
    }
}

impl RecordDecoder for DebeziumJsonDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, DecodeError> {
        let mut rows = Vec::with_capacity(records.len());
        let mut origin = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        let mut deletes = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let row = open(record.value).and_then(|opened| match opened {
                Opened::Row { after, schema } => self.row(after, schema).map(Some),
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
            matches!(open(plain), Ok(Opened::Row { after, schema: None }) if after == br#"{"id": 1, "name": "a"}"#)
        );
        let wrapped = br#"{"schema": {"type": "struct"}, "payload": {"before": {"id": 1}, "after": null, "op": "d"}}"#;
        assert!(matches!(open(wrapped), Ok(Opened::Delete)));
        assert!(open(br#"{"op": "t"}"#).is_err());
        assert!(open(br#"{"op": "u", "after": null}"#).is_err());
        assert!(open(b"[1]").is_err());
    }
}
