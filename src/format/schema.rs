//! Where each column of a SQL source comes from.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// Kafka metadata a column can hold instead of a value field. A column named
/// `_key`, `_partition`, `_offset`, `_timestamp` or `_headers` in the DDL holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataField {
    /// The record key as UTF-8 text, NULL when absent or not UTF-8 (TEXT). A table's
    /// key is its PRIMARY KEY column instead.
    Key,
    /// The record's partition (INT).
    Partition,
    /// The record's offset (BIGINT).
    Offset,
    /// The record's timestamp (TIMESTAMP, milliseconds).
    Timestamp,
    /// The record's headers as a JSON object of strings (TEXT).
    Headers,
}

impl MetadataField {
    /// The metadata a column name denotes, if any.
    pub fn from_column_name(name: &str) -> Option<Self> {
        match name {
            "_key" => Some(Self::Key),
            "_partition" => Some(Self::Partition),
            "_offset" => Some(Self::Offset),
            "_timestamp" => Some(Self::Timestamp),
            "_headers" => Some(Self::Headers),
            _ => None,
        }
    }

    /// The Arrow type of the column.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Key => DataType::Utf8,
            Self::Partition => DataType::Int32,
            Self::Offset => DataType::Int64,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Self::Headers => DataType::Utf8,
        }
    }
}

/// Where one column's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSource {
    /// The record key, as UTF-8 text (the PRIMARY KEY of a table).
    Key,
    /// The field of the same name in the JSON value, converted to the column's type.
    Field,
    /// The field of the same name in the JSON value, kept as JSON text (JSON columns).
    RawJson,
    /// Kafka metadata.
    Metadata(MetadataField),
}

/// What to do with a record whose value does not fit the declared columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Count, log and skip the record (the default).
    #[default]
    Skip,
    /// Keep the record; fields whose JSON type does not fit their column become NULL.
    /// Values that are not JSON objects at all are still skipped.
    Null,
    /// Stop the source: its sink keeps what it had and reports the error.
    Fail,
}

impl ErrorPolicy {
    /// Parses the `on_error` option: `skip`, `null` or `fail`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "skip" => Some(Self::Skip),
            "null" => Some(Self::Null),
            "fail" => Some(Self::Fail),
            _ => None,
        }
    }
}

/// How record values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueFormat {
    /// One JSON object per value (`format = 'json'`).
    #[default]
    Json,
    /// Avro in Confluent's wire format, schemas from a registry (`format = 'avro'`).
    Avro,
    /// JSON in Confluent's wire format for JSON Schema (`format = 'json_sr'`): read as
    /// JSON once the framing is removed; the declared columns say what is kept.
    JsonSr,
    /// Protobuf in Confluent's wire format (message indexes after the schema id),
    /// schemas from a registry (`format = 'protobuf'`).
    Protobuf,
}

/// How record keys are encoded; a table's key column holds the key as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyFormat {
    /// UTF-8 text (the default).
    #[default]
    Text,
    /// JSON: a string or number, or an object (a struct key such as Debezium's
    /// `{"id": 42}`, with or without the converter's `schema`/`payload` wrapper) whose
    /// field named like the key column (or whose only field) is the key.
    Json,
    /// Avro in Confluent's wire format: a primitive, or a record read like a JSON object.
    Avro,
    /// Protobuf in Confluent's wire format: a message whose field named like the key
    /// column (or whose only field) is the key.
    Protobuf,
    /// A 4-byte big-endian integer (Kafka's `IntegerSerializer`).
    Int,
    /// An 8-byte big-endian integer (Kafka's `LongSerializer`).
    BigInt,
    /// Any bytes, shown as `\x` and lower-case hex.
    Bytes,
}

/// What a value is wrapped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// The value is the row.
    #[default]
    None,
    /// A Debezium change event: `after` is the row for `c`, `r` and `u`; `d` deletes
    /// the key.
    Debezium,
}

/// The encodings of a source's records, and where their schemas come from.
#[derive(Debug, Clone, Default)]
pub struct FormatSpec {
    /// The value format.
    pub value: ValueFormat,
    /// The key format.
    pub key: KeyFormat,
    /// The value envelope.
    pub envelope: Envelope,
    /// The registry URL given for this source (`schema_registry = '...'`).
    pub registry_url: Option<String>,
    /// No columns were declared: they come from the registry's latest schemas.
    pub columns_from_registry: bool,
    /// The source is a table: its rows have a key column.
    pub keyed: bool,
    /// The registry client, once the source is prepared (see [`super::prepare`]).
    pub registry: Option<Arc<super::SchemaRegistry>>,
    /// The Protobuf message whose fields are the columns when they come from the
    /// registry (`message = '...'`; the schema's first message when absent).
    pub message: Option<String>,
    /// The value schema records are read as (the latest at preparation): records
    /// written with other schemas are resolved to it (Avro schema evolution).
    pub value_reader: Option<Arc<super::RegisteredSchema>>,
}

impl FormatSpec {
    /// True when records cannot be read without a schema registry.
    pub fn needs_registry(&self) -> bool {
        matches!(self.value, ValueFormat::Avro | ValueFormat::Protobuf)
            || matches!(self.key, KeyFormat::Avro | KeyFormat::Protobuf)
    }
}

/// A declared schema that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Two columns with one name.
    #[error("column '{0}' is declared twice")]
    DuplicateColumn(String),
    /// A metadata column declared with a type it cannot hold.
    #[error("metadata column '{name}' must have type {expected}")]
    MetadataType {
        /// The column.
        name: String,
        /// The type it must have.
        expected: DataType,
    },
}

/// The columns of a SQL source and where each comes from.
#[derive(Debug, Clone)]
pub struct SourceSchema {
    arrow: SchemaRef,
    sources: Vec<ColumnSource>,
    /// The columns decoded by arrow-json, as a schema of their own.
    field_schema: SchemaRef,
    on_error: ErrorPolicy,
    format: FormatSpec,
}

impl SourceSchema {
    /// Builds the schema from `(name, type, source)` columns in declared order.
    pub fn new(
        columns: Vec<(String, DataType, ColumnSource)>,
        on_error: ErrorPolicy,
    ) -> Result<Self, SchemaError> {
        let mut fields = Vec::with_capacity(columns.len());
        let mut sources = Vec::with_capacity(columns.len());
        let mut field_fields = Vec::new();
        for (name, data_type, source) in columns {
            if fields.iter().any(|f: &Field| f.name() == &name) {
                return Err(SchemaError::DuplicateColumn(name));
            }
            if let ColumnSource::Metadata(meta) = source {
                if meta.data_type() != data_type {
                    return Err(SchemaError::MetadataType {
                        name,
                        expected: meta.data_type(),
                    });
                }
            }
            // The key of a table is never null; everything else may be.
            let nullable = source != ColumnSource::Key;
            if source == ColumnSource::Field {
                field_fields.push(Field::new(&name, data_type.clone(), true));
            }
            fields.push(Field::new(name, data_type, nullable));
            sources.push(source);
        }
        Ok(Self {
            arrow: Arc::new(Schema::new(fields)),
            sources,
            field_schema: Arc::new(Schema::new(field_fields)),
            on_error,
            format: FormatSpec::default(),
        })
    }

    /// The same columns with records encoded as `format` says.
    pub fn with_format(mut self, format: FormatSpec) -> Self {
        self.format = format;
        self
    }

    /// How records are encoded.
    pub fn format(&self) -> &FormatSpec {
        &self.format
    }

    /// The names of the key columns, in schema order.
    pub fn key_names(&self) -> Vec<String> {
        self.key_indices()
            .into_iter()
            .map(|i| self.arrow.field(i).name().clone())
            .collect()
    }

    /// The Arrow schema of the source's rows.
    pub fn arrow(&self) -> &SchemaRef {
        &self.arrow
    }

    /// Where each column (in schema order) comes from.
    pub fn sources(&self) -> &[ColumnSource] {
        &self.sources
    }

    /// The index of the (first) key column, if the source has one.
    pub fn key_index(&self) -> Option<usize> {
        self.sources.iter().position(|s| *s == ColumnSource::Key)
    }

    /// The indices of the key columns in schema order: one, or the parts of a
    /// composite key.
    pub fn key_indices(&self) -> Vec<usize> {
        (0..self.sources.len())
            .filter(|&i| self.sources[i] == ColumnSource::Key)
            .collect()
    }

    /// The types of the key columns, in schema order.
    pub fn key_types(&self) -> Vec<DataType> {
        self.key_indices()
            .into_iter()
            .map(|i| self.arrow.field(i).data_type().clone())
            .collect()
    }

    /// The columns decoded from JSON fields, as their own schema.
    pub(crate) fn field_schema(&self) -> &SchemaRef {
        &self.field_schema
    }

    /// The policy for records that do not fit.
    pub fn on_error(&self) -> ErrorPolicy {
        self.on_error
    }
}
