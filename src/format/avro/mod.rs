//! Avro values in Confluent's wire format into Arrow rows of a declared schema.
//!
//! Each record names its writer schema by registry id. The decoder reads it with that
//! schema and resolves it to the reader schema (the subject's latest at preparation),
//! which is Avro's own schema evolution: a field added with a default gets the default,
//! a removed field is dropped, an `int` widens to `long`. The resolved record's fields
//! then fill the declared columns by name. Decoding is record at a time with
//! `apache-avro` because each record may carry a different writer schema and a bad one
//! must cost only itself; the cells of a record are converted first and appended only
//! when all fit, so a rejected record leaves no half row.
//!
//! Records that need no schema resolution (the writer schema is the reader's, or there
//! is no reader) are read straight into the columns by a plan compiled once per writer
//! schema (`direct`); the rest, and any record the plan cannot read exactly as the
//! general path would, go through apache-avro's `Value`s.
//!
//! Nested records, arrays and maps become JSON text (as JSON columns do for JSON
//! values): every PostgreSQL client can show and filter them with the JSON functions,
//! where Arrow structs have no wire type most drivers understand.

mod connect_types;
mod direct;

pub(super) use connect_types::with_logical_types;
pub(super) use direct::KeyPlan as AvroKeyPlan;

use super::cells::{cell_of_text, decimal_digits, in_unit, push_record, rescale, Cell};
use super::column_buffer::ColumnBuffer;
use super::registry::{split_framing, RegisteredSchema, SchemaRegistry};
use super::{
    ColumnSource, DecodeError, DecodeOutcome, Envelope, RawRecord, RecordDecoder, SourceSchema,
};
use apache_avro::schema::{Schema, UnionSchema};
use apache_avro::types::Value;
use arrow::datatypes::{DataType, TimeUnit};
use std::collections::HashMap;
use std::sync::Arc;

/// The most apache-avro may allocate for one length or count read from a record: a
/// string or bytes field, or the items of one block of an array or map. Its default
/// (512 MiB) let one malformed record (a map block claiming 2^28 entries, found by the
/// `avro_records` fuzz target) reserve tens of GiB, and a failed allocation aborts the
/// process. A record is far smaller (Kafka's default limit is 1 MiB), so a field over
/// this is rejected as bad instead. apache-avro keeps the first limit set in the
/// process: a program embedding ktable that set its own keeps it.
pub const MAX_AVRO_ALLOCATION: usize = 8 << 20;

/// Reads one Avro datum with `writer`, resolved to `reader` if given; the payload must
/// be read to its end.
pub(crate) fn read_datum(
    writer: &Schema,
    payload: &[u8],
    reader: Option<&Schema>,
) -> Result<Value, String> {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
    let mut cursor = payload;
    let value = apache_avro::from_avro_datum(writer, &mut cursor, reader)
        .map_err(|e| format!("not Avro of its schema: {e}"))?;
    if !cursor.is_empty() {
        return Err(format!(
            "{} bytes left after the Avro value: not Avro of its schema",
            cursor.len()
        ));
    }
    Ok(value)
}

/// What a record is once its envelope is opened: a Debezium row carries the event's
/// metadata as fields `_op`, `_source_ts_ms` and `_lsn` after its own, for the columns
/// of those names (as the JSON envelope does).
enum Opened {
    Row(Vec<(String, Value)>),
    Delete,
}

/// Decodes Avro records into rows of a [`SourceSchema`].
pub struct AvroDecoder {
    schema: Arc<SourceSchema>,
    registry: Arc<SchemaRegistry>,
    reader: Option<Arc<RegisteredSchema>>,
    /// Decimal scales of the declared columns, per writer schema id.
    scales: HashMap<u32, Arc<Vec<Option<i64>>>>,
    /// The direct plan of each writer schema id seen (None: the general path reads
    /// its records).
    plans: HashMap<u32, Option<direct::DirectPlan>>,
    /// False to read every record through the general path (to compare the two).
    use_plans: bool,
}

impl AvroDecoder {
    /// A decoder for `schema`, whose format has been prepared (it holds its registry).
    pub fn new(schema: Arc<SourceSchema>, registry: Arc<SchemaRegistry>) -> Self {
        Self {
            reader: schema.format().value_reader.clone(),
            schema,
            registry,
            scales: HashMap::new(),
            plans: HashMap::new(),
            use_plans: true,
        }
    }

    /// This decoder reading every record through apache-avro's `Value`s, as it does
    /// the records its direct plans cannot read: the reference the direct reader is
    /// checked against (tests, the `avro_records` fuzz target).
    #[doc(hidden)]
    pub fn without_direct_plans(mut self) -> Self {
        self.use_plans = false;
        self
    }

    /// The direct plan for a record written with schema `id`, compiled on first use.
    fn plan(&mut self, id: u32) -> Option<&direct::DirectPlan> {
        if !self.plans.contains_key(&id) {
            // A registry failure is left to the general path, which reports it.
            let writer = self.registry.schema_for_record(id).ok()?;
            let resolves = self.reader.as_ref().is_some_and(|r| r.id != id);
            let plan = match writer.avro.as_ref() {
                Some(avro) if !resolves => direct::DirectPlan::compile(avro, &self.schema),
                _ => None,
            };
            self.plans.insert(id, plan);
        }
        self.plans.get(&id)?.as_ref()
    }

    fn envelope(&self) -> Envelope {
        self.schema.format().envelope
    }

    /// Opens one record: the row's fields (or a delete) and the decimal scales of its
    /// schema. `Err(Ok(reason))` rejects the record; `Err(Err(e))` is a passing
    /// registry failure.
    #[allow(clippy::type_complexity)]
    fn open(
        &mut self,
        value: &[u8],
    ) -> Result<(Opened, Arc<Vec<Option<i64>>>), Result<String, DecodeError>> {
        let (id, payload) = split_framing(value).map_err(Ok)?;
        let writer = self.registry.schema_for_record(id).map_err(|e| {
            if e.is_transient() {
                Err(DecodeError::Registry(e))
            } else {
                Ok(e.to_string())
            }
        })?;
        let Some(writer_avro) = writer.avro.as_ref() else {
            return Err(Ok(format!("schema {id} is not an Avro schema")));
        };
        let reader = self
            .reader
            .as_ref()
            .filter(|r| r.id != id)
            .and_then(|r| r.avro.as_ref());
        let datum = read_datum(writer_avro, payload, reader).map_err(Ok)?;
        let scales = match self.scales.get(&id) {
            Some(scales) => Arc::clone(scales),
            None => {
                let effective = reader.unwrap_or(writer_avro);
                let scales = Arc::new(decimal_scales(effective, &self.schema, self.envelope()));
                self.scales.insert(id, Arc::clone(&scales));
                scales
            }
        };
        let opened = match self.envelope() {
            Envelope::None => match datum {
                Value::Record(fields) => Opened::Row(fields),
                other => return Err(Ok(format!("value is not an Avro record: {other:?}"))),
            },
            Envelope::Debezium => open_debezium(datum).map_err(Ok)?,
        };
        Ok((opened, scales))
    }
}

fn open_debezium(datum: Value) -> Result<Opened, String> {
    let Value::Record(mut fields) = datum else {
        return Err("a Debezium event is an Avro record".into());
    };
    let op = match field(&fields, "op") {
        Some(Value::String(op)) => op.clone(),
        _ => return Err("a Debezium event has an 'op' string".into()),
    };
    match op.as_str() {
        "d" => Ok(Opened::Delete),
        "c" | "r" | "u" => {
            let at = fields
                .iter()
                .position(|(name, _)| name == "after")
                .ok_or("a Debezium event has an 'after' field")?;
            let source = |name: &str| match field(&fields, "source") {
                Some(Value::Record(source)) => field(source, name).cloned(),
                _ => None,
            };
            // After the row's own fields: a row field of the same name is the row's.
            let metadata = [
                ("_op", Some(Value::String(op.clone()))),
                ("_source_ts_ms", source("ts_ms")),
                ("_lsn", source("lsn")),
            ];
            match unwrap_union(fields.swap_remove(at).1) {
                Value::Record(mut row) => {
                    row.extend(
                        metadata
                            .into_iter()
                            .map(|(name, value)| (name.to_string(), value.unwrap_or(Value::Null))),
                    );
                    Ok(Opened::Row(row))
                }
                other => Err(format!("Debezium 'after' is not a record: {other:?}")),
            }
        }
        other => Err(format!("Debezium op '{other}' is not a row change")),
    }
}

fn field<'a>(fields: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| match v {
            Value::Union(_, inner) => inner.as_ref(),
            v => v,
        })
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

impl RecordDecoder for AvroDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, DecodeError> {
        let sources = self.schema.sources().to_vec();
        let fields: Vec<_> = self.schema.arrow().fields().iter().cloned().collect();
        let mut columns: Vec<ColumnBuffer> = fields
            .iter()
            .map(|f| ColumnBuffer::new(f.data_type(), records.len()))
            .collect();
        let mut accepted = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        let mut deletes = Vec::new();
        let key_types = self.schema.key_types();
        for (i, record) in records.iter().enumerate() {
            if let Some(reason) = super::key::key_misfit(&key_types, record.key) {
                rejected.push((i, reason));
                continue;
            }
            if self.use_plans {
                if let Ok((id, payload)) = split_framing(record.value) {
                    let rows = accepted.len();
                    let read = self
                        .plan(id)
                        .and_then(|plan| plan.read(payload, &mut columns));
                    if read.as_ref() != Some(&direct::Direct::Row) {
                        columns.iter_mut().for_each(|c| c.truncate(rows));
                    }
                    match read {
                        Some(direct::Direct::Row) => {
                            accepted.push(i);
                            continue;
                        }
                        Some(direct::Direct::Delete) => {
                            deletes.push(i);
                            continue;
                        }
                        None => {}
                    }
                }
            }
            let (row, scales) = match self.open(record.value) {
                Ok((Opened::Row(row), scales)) => (row, scales),
                Ok((Opened::Delete, _)) => {
                    deletes.push(i);
                    continue;
                }
                Err(Ok(reason)) => {
                    rejected.push((i, reason));
                    continue;
                }
                Err(Err(e)) => return Err(e),
            };
            let pushed =
                push_record(
                    &fields,
                    self.schema.on_error(),
                    &mut columns,
                    |c, f| match sources[c] {
                        ColumnSource::Field => match field(&row, f.name()) {
                            None => Ok(Cell::Null),
                            Some(v) => to_cell(v, f.data_type(), scales[c]),
                        },
                        ColumnSource::RawJson => match field(&row, f.name()) {
                            None | Some(Value::Null) => Ok(Cell::Null),
                            Some(v) => json_text(v).map(Cell::Text),
                        },
                        ColumnSource::Key | ColumnSource::Metadata(_) => Ok(Cell::Null),
                    },
                );
            match pushed {
                Ok(()) => accepted.push(i),
                Err(reason) => rejected.push((i, reason)),
            }
        }

        super::cells::assemble(&self.schema, records, columns, accepted, rejected, deletes)
    }
}

/// The decimal scale of each declared column in the row schema of `schema`.
fn decimal_scales(schema: &Schema, source: &SourceSchema, envelope: Envelope) -> Vec<Option<i64>> {
    let names = named_records(schema);
    let row = row_record(schema, envelope, &names);
    source
        .arrow()
        .fields()
        .iter()
        .map(|f| {
            let record = row?;
            let at = record.lookup.get(f.name())?;
            match non_null(&record.fields[*at].schema) {
                Schema::Decimal(d) => Some(d.scale as i64),
                _ => None,
            }
        })
        .collect()
}

fn named_records(schema: &Schema) -> HashMap<String, &apache_avro::schema::RecordSchema> {
    fn walk<'a>(
        schema: &'a Schema,
        out: &mut HashMap<String, &'a apache_avro::schema::RecordSchema>,
    ) {
        match schema {
            Schema::Record(record) => {
                out.insert(record.name.fullname(None), record);
                for f in &record.fields {
                    walk(&f.schema, out);
                }
            }
            Schema::Union(union) => union.variants().iter().for_each(|v| walk(v, out)),
            Schema::Array(array) => walk(&array.items, out),
            Schema::Map(map) => walk(&map.types, out),
            _ => {}
        }
    }
    let mut out = HashMap::new();
    walk(schema, &mut out);
    out
}

/// The record schema whose fields are the row: the value itself, or Debezium's `after`.
fn row_record<'a>(
    schema: &'a Schema,
    envelope: Envelope,
    names: &HashMap<String, &'a apache_avro::schema::RecordSchema>,
) -> Option<&'a apache_avro::schema::RecordSchema> {
    let resolve = |s: &'a Schema| match s {
        Schema::Record(r) => Some(r),
        Schema::Ref { name } => names.get(&name.fullname(None)).copied(),
        _ => None,
    };
    let top = resolve(schema)?;
    match envelope {
        Envelope::None => Some(top),
        Envelope::Debezium => {
            let at = top.lookup.get("after")?;
            resolve(non_null(&top.fields[*at].schema))
        }
    }
}

/// The schema of a nullable union's non-null branch (the schema itself otherwise).
fn non_null(schema: &Schema) -> &Schema {
    match schema {
        Schema::Union(union) => single_non_null(union).unwrap_or(schema),
        other => other,
    }
}

fn single_non_null(union: &UnionSchema) -> Option<&Schema> {
    let mut branches = union.variants().iter().filter(|v| **v != Schema::Null);
    let first = branches.next()?;
    branches.next().is_none().then_some(first)
}

/// The columns of a source read from an Avro schema: `(name, type, source)` for each
/// field of the row record, nested values as JSON text.
pub fn columns_of(
    schema: &Schema,
    envelope: Envelope,
) -> Result<Vec<(String, DataType, ColumnSource)>, String> {
    let names = named_records(schema);
    let record = row_record(schema, envelope, &names).ok_or_else(|| match envelope {
        Envelope::None => "the value schema is not an Avro record".to_string(),
        Envelope::Debezium => "the value schema has no Debezium 'after' record".to_string(),
    })?;
    Ok(record
        .fields
        .iter()
        .map(|f| {
            let (data_type, source) = column_type(non_null(&f.schema));
            (f.name.clone(), data_type, source)
        })
        .collect())
}

/// The key column a key schema gives: its only field (a record key) or the whole key
/// (named `_key`); INT and BIGINT for `int` and `long`, TEXT otherwise.
pub fn key_column_of(schema: &Schema) -> Option<(String, DataType)> {
    let data_type = |schema: &Schema| match non_null(schema) {
        Schema::Int => DataType::Int32,
        Schema::Long => DataType::Int64,
        _ => DataType::Utf8,
    };
    match non_null(schema) {
        Schema::Record(record) if record.fields.len() == 1 => Some((
            record.fields[0].name.clone(),
            data_type(&record.fields[0].schema),
        )),
        Schema::Record(_) => None,
        other => Some(("_key".to_string(), data_type(other))),
    }
}

fn column_type(schema: &Schema) -> (DataType, ColumnSource) {
    let arrow = match schema {
        Schema::Boolean => DataType::Boolean,
        Schema::Int | Schema::TimeMillis => DataType::Int32,
        Schema::Long | Schema::TimeMicros => DataType::Int64,
        Schema::Float => DataType::Float32,
        Schema::Double => DataType::Float64,
        Schema::String | Schema::Enum(_) | Schema::Uuid => DataType::Utf8,
        Schema::Bytes | Schema::Fixed(_) => DataType::Binary,
        Schema::Decimal(d) if d.precision <= 38 => {
            DataType::Decimal128(d.precision as u8, d.scale as i8)
        }
        Schema::Date => DataType::Date32,
        Schema::TimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        Schema::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Schema::LocalTimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, None),
        Schema::LocalTimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, None),
        // Debezium's NUMERIC without a scale: its digits, exact (no DECIMAL type here
        // holds every scale).
        Schema::Record(record) if record.name.fullname(None) == VARIABLE_SCALE_DECIMAL => {
            DataType::Utf8
        }
        _ => return (DataType::Utf8, ColumnSource::RawJson),
    };
    (arrow, ColumnSource::Field)
}

fn json_text(value: &Value) -> Result<String, String> {
    serde_json::Value::try_from(value.clone())
        .map(|j| j.to_string())
        .map_err(|e| e.to_string())
}

const MILLIS_PER_DAY: i64 = 86_400_000;

fn to_cell(value: &Value, data_type: &DataType, scale: Option<i64>) -> Result<Cell, String> {
    use DataType as D;
    use Value as V;
    let misfit = || format!("Avro {value:?} does not fit {data_type}");
    let int_in = |i: i64, min: i64, max: i64| {
        (min..=max)
            .contains(&i)
            .then_some(Cell::Int(i))
            .ok_or_else(|| format!("{i} is out of range for {data_type}"))
    };
    Ok(match (value, data_type) {
        (V::Union(_, inner), _) => return to_cell(inner, data_type, scale),
        (V::Null, _) => Cell::Null,
        (V::Boolean(b), D::Boolean) => Cell::Bool(*b),
        (V::Int(i) | V::Date(i) | V::TimeMillis(i), D::Int16) => {
            int_in(*i as i64, i16::MIN as i64, i16::MAX as i64)?
        }
        (V::Long(i), D::Int16) => int_in(*i, i16::MIN as i64, i16::MAX as i64)?,
        (V::Int(i) | V::Date(i) | V::TimeMillis(i), D::Int32 | D::Int64 | D::Date32) => {
            Cell::Int(*i as i64)
        }
        (V::Long(i), D::Int32 | D::Date32) => int_in(*i, i32::MIN as i64, i32::MAX as i64)?,
        (
            V::Long(i)
            | V::TimeMicros(i)
            | V::TimestampMillis(i)
            | V::TimestampMicros(i)
            | V::LocalTimestampMillis(i)
            | V::LocalTimestampMicros(i),
            D::Int64,
        ) => Cell::Int(*i),
        (V::Int(i), D::Float32 | D::Float64) => Cell::Float(*i as f64),
        (V::Long(i), D::Float32 | D::Float64) => Cell::Float(*i as f64),
        (V::Float(f), D::Float32 | D::Float64) => Cell::Float(*f as f64),
        (V::Double(f), D::Float32 | D::Float64) => Cell::Float(*f),
        (V::String(s) | V::Enum(_, s), D::Utf8) => Cell::Text(s.clone()),
        (V::Uuid(u), D::Utf8) => Cell::Text(u.to_string()),
        (V::Int(i), D::Utf8) => Cell::Text(i.to_string()),
        (V::Long(i), D::Utf8) => Cell::Text(i.to_string()),
        (V::Boolean(b), D::Utf8) => Cell::Text(b.to_string()),
        // A VariableScaleDecimal as its digits, as the JSON format reads one; other
        // records as JSON.
        (V::Record(fields), D::Utf8) => match variable_scale_decimal(fields) {
            Some((unscaled, scale)) => {
                let scale = u32::try_from(scale).map_err(|_| misfit())?;
                Cell::Text(decimal_digits(unscaled, scale))
            }
            None => Cell::Text(json_text(value)?),
        },
        (V::Array(_) | V::Map(_), D::Utf8) => Cell::Text(json_text(value)?),
        (V::Bytes(b) | V::Fixed(_, b), D::Binary) => Cell::Bytes(b.clone()),
        (V::String(s), D::Binary) => Cell::Bytes(s.as_bytes().to_vec()),
        (V::Decimal(d), D::Decimal128(_, to)) => {
            let bytes = <Vec<u8>>::try_from(d).map_err(|e| e.to_string())?;
            let unscaled = i128_of_be(&bytes).ok_or_else(misfit)?;
            Cell::Decimal(rescale(unscaled, scale.unwrap_or(0), *to as i64).ok_or_else(misfit)?)
        }
        // Debezium's VariableScaleDecimal (PostgreSQL's NUMERIC without a scale): a
        // record of the scale and the unscaled value's bytes.
        (V::Record(fields), D::Decimal128(_, to)) => {
            let (unscaled, from) = variable_scale_decimal(fields).ok_or_else(misfit)?;
            Cell::Decimal(rescale(unscaled, from, *to as i64).ok_or_else(misfit)?)
        }
        (V::Record(fields), D::Float32 | D::Float64) => {
            let (unscaled, scale) = variable_scale_decimal(fields).ok_or_else(misfit)?;
            Cell::Float(unscaled as f64 / 10f64.powi(i32::try_from(scale).map_err(|_| misfit())?))
        }
        (V::Int(i), D::Decimal128(_, to)) => {
            Cell::Decimal(rescale(*i as i128, 0, *to as i64).ok_or_else(misfit)?)
        }
        (V::Long(i), D::Decimal128(_, to)) => {
            Cell::Decimal(rescale(*i as i128, 0, *to as i64).ok_or_else(misfit)?)
        }
        (V::Date(d), D::Timestamp(unit, _)) => Cell::Int(in_unit(
            *d as i64 * MILLIS_PER_DAY,
            TimeUnit::Millisecond,
            unit,
        )),
        (V::TimestampMillis(t) | V::LocalTimestampMillis(t), D::Timestamp(unit, _)) => {
            Cell::Int(in_unit(*t, TimeUnit::Millisecond, unit))
        }
        (V::TimestampMicros(t) | V::LocalTimestampMicros(t), D::Timestamp(unit, _)) => {
            Cell::Int(in_unit(*t, TimeUnit::Microsecond, unit))
        }
        (V::TimestampNanos(t) | V::LocalTimestampNanos(t), D::Timestamp(unit, _)) => {
            Cell::Int(in_unit(*t, TimeUnit::Nanosecond, unit))
        }
        (V::Long(t), D::Timestamp(_, _)) => Cell::Int(*t),
        (V::TimestampMillis(t), D::Date32) => Cell::Int(t.div_euclid(MILLIS_PER_DAY)),
        (V::String(s), _) => cell_of_text(s, data_type).ok_or_else(misfit)?,
        _ => return Err(misfit()),
    })
}

/// The Avro record name Kafka Connect's converters give Debezium's variable-scale
/// decimals.
const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";

/// The unscaled value and scale of a Debezium `VariableScaleDecimal` record
/// (`{"scale": int, "value": bytes}`, the unscaled value big-endian).
fn variable_scale_decimal(fields: &[(String, Value)]) -> Option<(i128, i64)> {
    let [(scale_name, Value::Int(scale)), (value_name, Value::Bytes(bytes))] = fields else {
        return None;
    };
    (scale_name == "scale" && value_name == "value").then_some(())?;
    Some((i128_of_be(bytes)?, i64::from(*scale)))
}

fn i128_of_be(bytes: &[u8]) -> Option<i128> {
    if bytes.len() > 16 {
        return None;
    }
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut full = [fill; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_past_the_allocation_limit_is_a_bad_record_not_an_abort() {
        let map: Schema =
            Schema::parse_str(r#"{"type": "map", "values": "long"}"#).expect("schema");
        // A block of 2^28 entries (zig-zag varint), then nothing: unlimited, the
        // decoder reserves room for all of them first (tens of GiB) and aborts.
        let claims_many = [0x80, 0x80, 0x80, 0x80, 0x02];
        let error = read_datum(&map, &claims_many, None).expect_err("rejected");
        assert!(error.contains("not Avro"), "{error}");
        let array: Schema =
            Schema::parse_str(r#"{"type": "array", "items": "null"}"#).expect("schema");
        assert!(read_datum(&array, &claims_many, None).is_err());
    }

    #[test]
    fn decimals_read_big_endian() {
        assert_eq!(i128_of_be(&[0xff, 0x38]), Some(-200));
        assert_eq!(i128_of_be(&[0x04, 0xd2]), Some(1234));
    }

    #[test]
    fn variable_scale_decimals_fill_decimal_and_double_columns() {
        let decimal = |scale: i32, unscaled: &[u8]| {
            Value::Record(vec![
                ("scale".into(), Value::Int(scale)),
                ("value".into(), Value::Bytes(unscaled.to_vec())),
            ])
        };
        // -12.34 at scale 2, into DECIMAL(10, 3) and DOUBLE.
        let value = decimal(2, &[0xfb, 0x2e]);
        let cell = to_cell(&value, &DataType::Decimal128(10, 3), None);
        assert_eq!(cell, Ok(Cell::Decimal(-12_340)));
        assert_eq!(
            to_cell(&value, &DataType::Float64, None),
            Ok(Cell::Float(-12.34))
        );
        // TEXT: the digits, as from a JSON event.
        assert_eq!(
            to_cell(&value, &DataType::Utf8, None),
            Ok(Cell::Text("-12.34".into()))
        );
        // A scale the column cannot hold exactly, and other records, do not fit.
        assert!(to_cell(
            &decimal(4, &[0x30, 0x39]),
            &DataType::Decimal128(10, 2),
            None
        )
        .is_err());
        let other = Value::Record(vec![("scale".into(), Value::Int(2))]);
        assert!(to_cell(&other, &DataType::Decimal128(10, 2), None).is_err());
    }

    #[test]
    fn numbers_as_text_fill_numeric_columns_as_in_json() {
        // Debezium's decimal.handling.mode = string.
        let text = |s: &str| Value::String(s.into());
        assert_eq!(
            to_cell(&text("-12.34"), &DataType::Decimal128(10, 2), None),
            Ok(Cell::Decimal(-1_234))
        );
        assert_eq!(
            to_cell(&text("2.5"), &DataType::Float64, None),
            Ok(Cell::Float(2.5))
        );
        assert_eq!(
            to_cell(&text("70000"), &DataType::Int32, None),
            Ok(Cell::Int(70_000))
        );
        assert!(to_cell(&text("70000"), &DataType::Int16, None).is_err());
        assert!(to_cell(&text("n/a"), &DataType::Decimal128(10, 2), None).is_err());
    }

    #[test]
    fn registry_schemas_map_to_columns() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "id", "type": "long"},
                {"name": "name", "type": ["null", "string"], "default": null},
                {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "address", "type": {"type": "record", "name": "A", "fields": [{"name": "city", "type": "string"}]}},
                {"name": "amount", "type": ["null", {"type": "record", "name": "VariableScaleDecimal",
                    "namespace": "io.debezium.data", "fields": [
                        {"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}]}]}
            ]}"#,
        )
        .unwrap();
        let columns = columns_of(&schema, Envelope::None).unwrap();
        let types: Vec<(&str, &DataType, &ColumnSource)> =
            columns.iter().map(|(n, t, s)| (n.as_str(), t, s)).collect();
        assert_eq!(
            types,
            vec![
                ("id", &DataType::Int64, &ColumnSource::Field),
                ("name", &DataType::Utf8, &ColumnSource::Field),
                ("price", &DataType::Decimal128(10, 2), &ColumnSource::Field),
                (
                    "at",
                    &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    &ColumnSource::Field
                ),
                ("day", &DataType::Date32, &ColumnSource::Field),
                ("uid", &DataType::Utf8, &ColumnSource::Field),
                ("address", &DataType::Utf8, &ColumnSource::RawJson),
                ("amount", &DataType::Utf8, &ColumnSource::Field),
            ]
        );
    }
}
