//! Decoding: Kafka records into Arrow rows of a declared schema.
//!
//! A SQL source declares its columns in DDL; [`SourceSchema`] says where each column
//! comes from (the record key, a field of the JSON value, the raw JSON of a field, or
//! Kafka metadata), and [`JsonDecoder`] turns a batch of records into one
//! `RecordBatch` with arrow-json's columnar decoder, isolating the records that do not
//! fit so that one bad record costs only itself.

mod json;
mod schema;

pub use json::{DecodeOutcome, JsonDecoder, RawRecord};
pub use schema::{ColumnSource, ErrorPolicy, MetadataField, SchemaError, SourceSchema};
