//! Decoding: Kafka records into Arrow rows of a declared schema.
//!
//! A SQL source declares its columns in DDL; [`SourceSchema`] says where each column
//! comes from (the record key, a field of the value, the raw JSON of a field, or Kafka
//! metadata) and how records are encoded ([`FormatSpec`]). Each value format is a
//! [`RecordDecoder`]: a batch of records in, one `RecordBatch` plus the rejected
//! records out, so that one bad record costs only itself. [`decoder_for`] picks it;
//! the table and stream sinks share it.
//!
//! * `json` — JSON objects, arrow-json's columnar decoder.
//! * `avro` — Avro in Confluent's wire format, schemas from a registry (`registry`).
//! * `json_sr` — JSON in Confluent's wire format (JSON Schema): the framing removed,
//!   then read as `json` (`framed`).
//! * `protobuf` — Protobuf in Confluent's wire format, schemas (`.proto` text compiled
//!   at run time) from a registry.
//! * `debezium` — Debezium's JSON envelope around the JSON decoder (Avro events are
//!   opened inside the Avro decoder).
//! * `key` — record keys in each key format, as the text a table is keyed by.

mod avro;
mod cells;
mod column_buffer;
mod connect_json;
mod debezium;
mod decimal_exponent;
mod framed;
mod json;
mod key;
mod protobuf;
mod registry;
mod schema;

pub use avro::{columns_of as avro_columns, AvroDecoder, MAX_AVRO_ALLOCATION};
pub use debezium::DebeziumJsonDecoder;
pub use framed::FramedDecoder;
pub use json::{DecodeOutcome, JsonDecoder, RawRecord};
pub use key::{composite_text, key_parts, KeyDecoder, KeyError};
pub use protobuf::{columns_of as protobuf_columns, ProtoSchema, ProtobufDecoder};
pub use registry::{
    blocking, split_framing, RegisteredSchema, RegistryError, SchemaKind, SchemaReference,
    SchemaRegistry,
};
pub use schema::{
    ColumnSource, Envelope, ErrorPolicy, FormatSpec, KeyFormat, MetadataField, SchemaError,
    SourceSchema, ValueFormat,
};

use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use std::sync::Arc;

/// Why a batch could not be decoded at all (bad records are not errors: they are in
/// [`DecodeOutcome::rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Arrow failed.
    #[error("decoding into Arrow failed: {0}")]
    Arrow(#[from] ArrowError),
    /// A schema could not be fetched and may be later: decode the batch again then.
    #[error(transparent)]
    Registry(RegistryError),
}

/// Decodes a batch of record values into rows of a source's schema.
pub trait RecordDecoder: Send {
    /// Decodes `records` (tombstones excluded). Nothing is kept between calls that a
    /// failed call would leave half done: after [`DecodeError::Registry`] the same
    /// batch can be decoded again.
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, DecodeError>;
}

/// The decoder for a source's value format. A registry format needs a prepared schema
/// (see [`prepare`]); unprepared, its records are all rejected.
pub fn decoder_for(schema: &Arc<SourceSchema>) -> Box<dyn RecordDecoder> {
    let format = schema.format();
    match (format.value, format.envelope) {
        (ValueFormat::Json, Envelope::None) => Box::new(JsonDecoder::new(Arc::clone(schema))),
        (ValueFormat::Json, Envelope::Debezium) => Box::new(DebeziumJsonDecoder::new(
            JsonDecoder::new(Arc::clone(schema)),
        )),
        (ValueFormat::JsonSr, Envelope::None) => {
            Box::new(FramedDecoder::new(JsonDecoder::new(Arc::clone(schema))))
        }
        (ValueFormat::JsonSr, Envelope::Debezium) => Box::new(FramedDecoder::new(
            DebeziumJsonDecoder::new(JsonDecoder::new(Arc::clone(schema))),
        )),
        (ValueFormat::Avro, _) => match &format.registry {
            Some(registry) => Box::new(AvroDecoder::new(Arc::clone(schema), Arc::clone(registry))),
            None => Box::new(Unprepared(Arc::clone(schema))),
        },
        // Refused when the source is declared (a Debezium envelope is JSON or Avro).
        (ValueFormat::Protobuf, _) => match &format.registry {
            Some(registry) => Box::new(ProtobufDecoder::new(
                Arc::clone(schema),
                Arc::clone(registry),
            )),
            None => Box::new(Unprepared(Arc::clone(schema))),
        },
    }
}

/// The key decoder of a table's schema (None for a source without a key column).
pub fn key_decoder_for(schema: &SourceSchema) -> Option<KeyDecoder> {
    let format = schema.format();
    let names = schema.key_names();
    (!names.is_empty()).then(|| KeyDecoder::new(format.key, names, format.registry.clone()))
}

/// A registry format whose schema was never prepared: every record is rejected.
struct Unprepared(Arc<SourceSchema>);

impl RecordDecoder for Unprepared {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, DecodeError> {
        Ok(DecodeOutcome {
            batch: arrow::array::RecordBatch::new_empty(Arc::clone(self.0.arrow())),
            accepted: Vec::new(),
            rejected: (0..records.len())
                .map(|i| (i, "the source has no schema registry".to_string()))
                .collect(),
            deletes: Vec::new(),
        })
    }
}

/// Why a source's format could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The registry did not give what the source needs.
    #[error("{0}")]
    Registry(#[from] RegistryError),
    /// Anything else.
    #[error("{0}")]
    Invalid(String),
}

/// Connects a source's schema to its schema registry: the registry client (the
/// source's `schema_registry`, else `default_registry`), the Avro reader schema (the
/// latest value schema of subject `<topic>-value`), and, when no columns were declared,
/// the columns of that schema (for Protobuf, of its message `message`, else its first)
/// and the key column from `<topic>-key`. Formats without a
/// registry are returned as they are. Runs the registry requests on a blocking thread.
pub async fn prepare(
    schema: Arc<SourceSchema>,
    topic: &str,
    default_registry: Option<&str>,
) -> Result<Arc<SourceSchema>, PrepareError> {
    if !schema.format().needs_registry() {
        return Ok(schema);
    }
    let url = schema
        .format()
        .registry_url
        .clone()
        .or_else(|| default_registry.map(str::to_string))
        .ok_or_else(|| {
            PrepareError::Invalid(
                "this format needs a schema registry: set schema_registry_url in the \
                 config, --schema-registry, KTABLE_SCHEMA_REGISTRY, or WITH \
                 (schema_registry = '...')"
                    .into(),
            )
        })?;
    let topic = topic.to_string();
    let task = tokio::task::spawn_blocking(move || prepare_blocking(&schema, &topic, &url));
    task.await
        .map_err(|e| PrepareError::Invalid(format!("preparing the format failed: {e}")))?
}

fn prepare_blocking(
    schema: &SourceSchema,
    topic: &str,
    url: &str,
) -> Result<Arc<SourceSchema>, PrepareError> {
    let registry = SchemaRegistry::shared(url)?;
    let mut format = schema.format().clone();
    format.registry = Some(Arc::clone(&registry));
    if format.value == ValueFormat::Avro {
        match registry.latest(&format!("{topic}-value")) {
            Ok(latest) => format.value_reader = Some(latest),
            // Declared columns do not need it: records are read with their own schemas.
            Err(e) if !format.columns_from_registry => {
                tracing::warn!(topic, error = %e, "no reader schema: records are read with their writer schemas")
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !format.columns_from_registry {
        return Ok(Arc::new(rebuild(schema, None)?.with_format(format)));
    }
    let mut columns = Vec::new();
    if format.keyed {
        let (key_name, key_type) = match format.key {
            KeyFormat::Avro => {
                let latest = registry.latest(&format!("{topic}-key"))?;
                latest
                    .avro
                    .as_ref()
                    .and_then(avro::key_column_of)
                    .ok_or_else(|| {
                        PrepareError::Invalid(format!(
                            "the key schema of '{topic}' is a record of several fields: \
                             declare the columns and the PRIMARY KEY"
                        ))
                    })?
            }
            KeyFormat::Protobuf => {
                let latest = registry.latest(&format!("{topic}-key"))?;
                let compiled = protobuf::compiled(&registry, &latest)?;
                let message = compiled
                    .message_named(None)
                    .map_err(PrepareError::Invalid)?;
                protobuf::key_column_of(&message).ok_or_else(|| {
                    PrepareError::Invalid(format!(
                        "the key message of '{topic}' has several fields: \
                         declare the columns and the PRIMARY KEY"
                    ))
                })?
            }
            KeyFormat::Int => ("_key".to_string(), DataType::Int32),
            KeyFormat::BigInt => ("_key".to_string(), DataType::Int64),
            _ => ("_key".to_string(), DataType::Utf8),
        };
        columns.push((key_name, key_type, ColumnSource::Key));
    }
    let value_columns = if format.value == ValueFormat::Protobuf {
        let latest = registry.latest(&format!("{topic}-value"))?;
        let compiled = protobuf::compiled(&registry, &latest)?;
        let message = compiled
            .message_named(format.message.as_deref())
            .map_err(PrepareError::Invalid)?;
        protobuf::columns_of(&message)
    } else {
        let value = format.value_reader.as_ref().and_then(|r| r.avro.as_ref());
        let value = value.ok_or_else(|| {
            PrepareError::Invalid(format!("the value schema of '{topic}' is not Avro"))
        })?;
        avro::columns_of(value, format.envelope).map_err(PrepareError::Invalid)?
    };
    for (name, data_type, source) in value_columns {
        // The key's field is also in the value (Debezium's `after` has it): the key
        // column holds it.
        if columns.iter().any(|(n, _, _)| *n == name) {
            continue;
        }
        columns.push((name, data_type, source));
    }
    Ok(Arc::new(
        rebuild(schema, Some(columns))?.with_format(format),
    ))
}

/// The schema with `columns` instead of its own (its own if None).
fn rebuild(
    schema: &SourceSchema,
    columns: Option<Vec<(String, DataType, ColumnSource)>>,
) -> Result<SourceSchema, PrepareError> {
    let columns = columns.unwrap_or_else(|| {
        schema
            .arrow()
            .fields()
            .iter()
            .zip(schema.sources())
            .map(|(f, s)| (f.name().clone(), f.data_type().clone(), s.clone()))
            .collect()
    });
    SourceSchema::new(columns, schema.on_error()).map_err(|e| PrepareError::Invalid(e.to_string()))
}
