//! Avro binary read straight into the columns, for records that need no schema
//! resolution (written with the reader schema, or read without one): the common case,
//! and the one the restore of a topic spends its time in.
//!
//! apache-avro builds a `Value` tree per record (its field names cloned from the
//! schema, every string allocated) and resolves the schema's names again for each
//! record; the general path then finds each column's field by name. A [`DirectPlan`]
//! walks the writer schema once, when its id is first seen, into one step per field in
//! writer order: read this field into that column, skip it, or (nested values) let
//! apache-avro decode just that field. A record then costs a pass over its bytes.
//!
//! The plan is an accelerator, never a second definition of the format: it succeeds
//! only where the general path would give the same row, and gives up on anything else
//! (a value that does not fit its column, bytes that do not parse, a truncated record,
//! which apache-avro reads with quirks of its own), leaving that record to the general
//! path, which decides and words the rejection. It is at least as strict as
//! apache-avro: every byte it skips is checked as apache-avro would check it.

use super::{decimal_scales, i128_of_be, json_text, named_records, to_cell, MILLIS_PER_DAY};
use crate::format::cells::{cell_of_text, in_unit, rescale};
use crate::format::column_buffer::ColumnBuffer;
use crate::format::{ColumnSource, Envelope, SourceSchema};
use apache_avro::schema::{RecordSchema, Schema};
use apache_avro::types::Value;
use arrow::datatypes::{DataType, TimeUnit};

/// How the general path's `field` reads a field: the value, one union level opened.
fn opened(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

/// What a record read by a plan turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Direct {
    /// A row, written to every column.
    Row,
    /// A Debezium delete: the caller drops what was written.
    Delete,
}

/// A writer schema compiled into steps.
#[derive(Debug)]
pub(super) struct DirectPlan {
    steps: Vec<Step>,
    /// The columns no field of the writer fills: NULL in every row.
    unwritten: Vec<usize>,
    /// apache-avro's limit on one length or count, as in effect in this process.
    max_length: usize,
}

#[derive(Debug)]
enum Step {
    /// A field no column takes: read past it, checking it.
    Skip(Schema),
    /// A field no column takes, with types the skipper does not check as apache-avro
    /// does (a UUID is parsed): apache-avro reads it.
    Discard(Schema),
    /// A field into a column.
    Column {
        column: usize,
        read: Read,
        data_type: DataType,
        scale: Option<i64>,
    },
    /// Debezium's `op`, also into the `_op` column if one is declared (a column of
    /// `data_type`).
    Op(Option<(usize, DataType)>),
    /// Debezium's `source` record, its `ts_ms` and `lsn` into the `_source_ts_ms` and
    /// `_lsn` columns.
    Source(Vec<Step>),
    /// Debezium's `after`: the row, maybe in a union with null.
    After {
        nullable: Option<Nullable>,
        steps: Vec<Step>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Nullable {
    null_index: i64,
    value_index: i64,
}

#[derive(Debug)]
enum Read {
    Scalar(Kind),
    /// A union of null and one scalar.
    Nullable(Nullable, Kind),
    /// Anything else (records, arrays, maps, other unions, UUIDs): apache-avro decodes
    /// the field, then the general path's conversion applies; `raw_json` for a JSON
    /// column.
    Datum {
        schema: Schema,
        raw_json: bool,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Boolean,
    Int,
    Date,
    TimeMillis,
    Long,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    LocalTimestampMillis,
    LocalTimestampMicros,
    LocalTimestampNanos,
    Float,
    Double,
    String,
    Bytes,
    Fixed(usize),
    Enum(Vec<String>),
    DecimalBytes,
    DecimalFixed(usize),
}

fn kind_of(schema: &Schema) -> Option<Kind> {
    Some(match schema {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int => Kind::Int,
        Schema::Date => Kind::Date,
        Schema::TimeMillis => Kind::TimeMillis,
        Schema::Long => Kind::Long,
        Schema::TimeMicros => Kind::TimeMicros,
        Schema::TimestampMillis => Kind::TimestampMillis,
        Schema::TimestampMicros => Kind::TimestampMicros,
        Schema::TimestampNanos => Kind::TimestampNanos,
        Schema::LocalTimestampMillis => Kind::LocalTimestampMillis,
        Schema::LocalTimestampMicros => Kind::LocalTimestampMicros,
        Schema::LocalTimestampNanos => Kind::LocalTimestampNanos,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::String => Kind::String,
        Schema::Bytes => Kind::Bytes,
        Schema::Fixed(fixed) => Kind::Fixed(fixed.size),
        Schema::Enum(e) => Kind::Enum(e.symbols.clone()),
        Schema::Decimal(d) => match d.inner.as_ref() {
            Schema::Bytes => Kind::DecimalBytes,
            Schema::Fixed(fixed) => Kind::DecimalFixed(fixed.size),
            _ => return None,
        },
        _ => return None,
    })
}

/// True when the schema has a named reference anywhere: such a part cannot be read on
/// its own, so the whole writer schema is left to the general path.
fn has_ref(schema: &Schema) -> bool {
    match schema {
        Schema::Ref { .. } => true,
        Schema::Record(r) => r.fields.iter().any(|f| has_ref(&f.schema)),
        Schema::Union(u) => u.variants().iter().any(has_ref),
        Schema::Array(a) => has_ref(&a.items),
        Schema::Map(m) => has_ref(&m.types),
        Schema::Decimal(d) => has_ref(&d.inner),
        _ => false,
    }
}

/// True when [`skip`] checks everything apache-avro checks in this schema.
fn skippable(schema: &Schema) -> bool {
    match schema {
        Schema::Uuid | Schema::BigDecimal | Schema::Ref { .. } => false,
        Schema::Record(r) => r.fields.iter().all(|f| skippable(&f.schema)),
        Schema::Union(u) => u.variants().iter().all(skippable),
        Schema::Array(a) => skippable(&a.items),
        Schema::Map(m) => skippable(&m.types),
        Schema::Decimal(d) => matches!(d.inner.as_ref(), Schema::Bytes | Schema::Fixed(_)),
        _ => true,
    }
}

fn nullable_of(schema: &Schema) -> Option<(Nullable, &Schema)> {
    let Schema::Union(union) = schema else {
        return None;
    };
    match union.variants() {
        [Schema::Null, value] => Some((
            Nullable {
                null_index: 0,
                value_index: 1,
            },
            value,
        )),
        [value, Schema::Null] => Some((
            Nullable {
                null_index: 1,
                value_index: 0,
            },
            value,
        )),
        _ => None,
    }
}

impl DirectPlan {
    /// The plan of `writer` for `schema`'s columns, or None when the general path must
    /// read its records (named references, a Debezium event it cannot follow).
    pub(super) fn compile(writer: &Schema, schema: &SourceSchema) -> Option<DirectPlan> {
        // The general path checks that the schema's names resolve for every record;
        // a schema where they do not is left to it.
        apache_avro::schema::ResolvedSchema::try_from(writer).ok()?;
        let envelope = schema.format().envelope;
        let scales = decimal_scales(writer, schema, envelope);
        let mut written = vec![false; schema.arrow().fields().len()];
        let Schema::Record(top) = writer else {
            return None;
        };
        let steps = match envelope {
            Envelope::None => {
                if has_ref(writer) {
                    return None;
                }
                row_steps(top, schema, &scales, &mut written)
            }
            Envelope::Debezium => debezium_steps(top, writer, schema, &scales, &mut written)?,
        };
        Some(DirectPlan {
            steps,
            unwritten: (0..written.len()).filter(|c| !written[*c]).collect(),
            max_length: apache_avro::util::max_allocation_bytes(super::MAX_AVRO_ALLOCATION),
        })
    }

    /// Reads one record's Avro payload (the framing removed) into `columns`. None when
    /// the general path must read it; the caller then cuts the columns back.
    pub(super) fn read(&self, payload: &[u8], columns: &mut [ColumnBuffer]) -> Option<Direct> {
        let mut input = Input {
            bytes: payload,
            max_length: self.max_length,
        };
        let mut op = None;
        let mut row = false;
        for step in &self.steps {
            match step {
                Step::Op(column) => {
                    let read = input.string()?;
                    if let Some((column, data_type)) = column {
                        put(Scalar::Str(read), data_type, None, &mut columns[*column])?;
                    }
                    op = Some(read);
                }
                Step::Source(steps) => read_fields(steps, &mut input, columns)?,
                Step::After { nullable, steps } => {
                    let present = match nullable {
                        None => true,
                        Some(n) => input.branch(*n)?,
                    };
                    if present {
                        read_fields(steps, &mut input, columns)?;
                        row = true;
                    }
                }
                other => read_field(other, &mut input, columns)?,
            }
        }
        if !input.bytes.is_empty() {
            return None;
        }
        let is_row = match op {
            None => true,
            Some("d") => return Some(Direct::Delete),
            Some("c" | "r" | "u") => row,
            Some(_) => false,
        };
        if !is_row {
            return None;
        }
        for column in &self.unwritten {
            columns[*column].push_null();
        }
        Some(Direct::Row)
    }
}

/// The steps of a Debezium event: `after` into the row's columns, `op` and `source`
/// into the metadata columns the general path fills (`_op`, `_source_ts_ms`,
/// `_lsn`), the rest skipped. None when the event's schema is not one to follow.
fn debezium_steps(
    top: &RecordSchema,
    writer: &Schema,
    schema: &SourceSchema,
    scales: &[Option<i64>],
    written: &mut [bool],
) -> Option<Vec<Step>> {
    let names = named_records(writer);
    // `after` first: a row field named like a metadata column is the row's.
    let after = top.fields.iter().find(|f| f.name == "after")?;
    let (nullable, row) = match nullable_of(&after.schema) {
        Some((nullable, row)) => (Some(nullable), row),
        None => (None, &after.schema),
    };
    let row = match row {
        Schema::Record(r) => r,
        Schema::Ref { name } => names.get(&name.fullname(None))?,
        _ => return None,
    };
    if row.fields.iter().any(|f| has_ref(&f.schema)) {
        return None;
    }
    let mut after_steps = Some(row_steps(row, schema, scales, written));
    let fields = schema.arrow().fields();
    // A metadata column not filled by the row: claimed by `op` or `source`. The
    // general path fills it as a value field; a JSON column of it is left to it.
    let claim = |name: &str, written: &mut [bool]| -> Result<Option<usize>, ()> {
        let Some(column) = fields.iter().position(|f| f.name() == name) else {
            return Ok(None);
        };
        if written[column] {
            return Ok(None);
        }
        match schema.sources()[column] {
            ColumnSource::Field => {
                written[column] = true;
                Ok(Some(column))
            }
            ColumnSource::RawJson => Err(()),
            ColumnSource::Key | ColumnSource::Metadata(_) => Ok(None),
        }
    };
    let mut steps = Vec::with_capacity(top.fields.len());
    let mut op = false;
    for field in &top.fields {
        let step = match field.name.as_str() {
            "op" if matches!(field.schema, Schema::String) => {
                op = true;
                let column = claim("_op", written).ok()?;
                Step::Op(column.map(|c| (c, fields[c].data_type().clone())))
            }
            "op" => return None,
            "after" => Step::After {
                nullable,
                steps: after_steps.take()?,
            },
            "source" => {
                let ts_ms = claim("_source_ts_ms", written).ok()?;
                let lsn = claim("_lsn", written).ok()?;
                match (&field.schema, ts_ms.or(lsn)) {
                    (_, None) if has_ref(&field.schema) => return None,
                    (_, None) => skip_step(&field.schema),
                    (Schema::Record(source), Some(_)) if !has_ref(&field.schema) => {
                        let mut only_claimed = vec![true; written.len()];
                        for column in ts_ms.iter().chain(&lsn) {
                            only_claimed[*column] = false;
                        }
                        let steps =
                            record_steps(source, schema, scales, &mut only_claimed, |name| {
                                match name {
                                    "ts_ms" => Some("_source_ts_ms"),
                                    "lsn" => Some("_lsn"),
                                    _ => None,
                                }
                            });
                        // A claimed column the source record lacks is NULL.
                        for column in ts_ms.iter().chain(&lsn) {
                            written[*column] = only_claimed[*column];
                        }
                        Step::Source(steps)
                    }
                    _ => return None,
                }
            }
            _ if has_ref(&field.schema) => return None,
            _ => skip_step(&field.schema),
        };
        steps.push(step);
    }
    op.then_some(steps)
}

/// The steps of a row record's fields, marking the columns they fill in `written`.
fn row_steps(
    record: &RecordSchema,
    schema: &SourceSchema,
    scales: &[Option<i64>],
    written: &mut [bool],
) -> Vec<Step> {
    record_steps(record, schema, scales, written, Some)
}

/// The steps of a record's fields, each into the column `column_of` names for it.
fn record_steps<'r>(
    record: &'r RecordSchema,
    schema: &SourceSchema,
    scales: &[Option<i64>],
    written: &mut [bool],
    column_of: impl Fn(&'r str) -> Option<&'r str>,
) -> Vec<Step> {
    let fields = schema.arrow().fields();
    record
        .fields
        .iter()
        .map(|field| {
            let name = column_of(&field.name);
            let column = name.and_then(|name| fields.iter().position(|f| f.name() == name));
            let Some(column) = column.filter(|c| !written[*c]) else {
                return skip_step(&field.schema);
            };
            let raw_json = match schema.sources()[column] {
                ColumnSource::Field => false,
                ColumnSource::RawJson => true,
                ColumnSource::Key | ColumnSource::Metadata(_) => return skip_step(&field.schema),
            };
            written[column] = true;
            let nullable = || {
                let (nullable, value) = nullable_of(&field.schema)?;
                Some(Read::Nullable(nullable, kind_of(value)?))
            };
            let read = match kind_of(&field.schema) {
                _ if raw_json => None,
                Some(kind) => Some(Read::Scalar(kind)),
                None => nullable(),
            }
            .unwrap_or_else(|| Read::Datum {
                schema: field.schema.clone(),
                raw_json,
            });
            Step::Column {
                column,
                read,
                data_type: fields[column].data_type().clone(),
                scale: scales[column],
            }
        })
        .collect()
}

fn skip_step(schema: &Schema) -> Step {
    if skippable(schema) {
        Step::Skip(schema.clone())
    } else {
        Step::Discard(schema.clone())
    }
}

fn read_fields(steps: &[Step], input: &mut Input<'_>, columns: &mut [ColumnBuffer]) -> Option<()> {
    steps
        .iter()
        .try_for_each(|step| read_field(step, input, columns))
}

fn read_field(step: &Step, input: &mut Input<'_>, columns: &mut [ColumnBuffer]) -> Option<()> {
    let Step::Column {
        column,
        read,
        data_type,
        scale,
    } = step
    else {
        return match step {
            Step::Skip(schema) => input.skip(schema),
            Step::Discard(schema) => input.datum(schema).map(drop),
            // Only at the top of a Debezium event, where `DirectPlan::read` takes them.
            _ => None,
        };
    };
    let out = &mut columns[*column];
    match read {
        Read::Scalar(kind) => put(input.scalar(kind)?, data_type, *scale, out)?,
        Read::Nullable(nullable, kind) => {
            if input.branch(*nullable)? {
                put(input.scalar(kind)?, data_type, *scale, out)?
            } else {
                out.push_null()
            }
        }
        Read::Datum { schema, raw_json } => match (raw_json, opened(input.datum(schema)?)) {
            (true, Value::Null) => out.push_null(),
            (true, value) => out.push_text(&json_text(&value).ok()?),
            (false, value) => out.push_cell(to_cell(&value, data_type, *scale).ok()?),
        },
    }
    Some(())
}

/// How a one-column Avro key is read straight from its bytes: a string, int or long
/// on its own, or as the only field of a record (what Debezium and Confluent's
/// serializers write). The text is the general path's (`key::avro_key`).
#[derive(Debug, Clone, Copy)]
pub(in crate::format) enum KeyPlan {
    Text,
    Int,
    Long,
}

impl KeyPlan {
    /// The plan of key schema `schema`, if it is one of those.
    pub(in crate::format) fn of(schema: &Schema) -> Option<Self> {
        let scalar = |schema: &Schema| match schema {
            Schema::String => Some(Self::Text),
            Schema::Int | Schema::Date | Schema::TimeMillis => Some(Self::Int),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Some(Self::Long),
            _ => None,
        };
        match schema {
            Schema::Record(record) => match record.fields.as_slice() {
                [only] => scalar(&only.schema),
                _ => None,
            },
            other => scalar(other),
        }
    }

    /// The key text of an Avro payload (the framing removed); None where the general
    /// path must read it.
    pub(in crate::format) fn read(self, payload: &[u8]) -> Option<String> {
        let mut input = Input {
            bytes: payload,
            max_length: apache_avro::util::max_allocation_bytes(super::MAX_AVRO_ALLOCATION),
        };
        let text = match self {
            Self::Text => input.string()?.to_string(),
            Self::Int => input.int()?.to_string(),
            Self::Long => input.long()?.to_string(),
        };
        input.bytes.is_empty().then_some(text)
    }
}

/// One scalar as read, borrowing the record's bytes.
#[derive(Debug)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Date(i32),
    TimeMillis(i32),
    Long(i64),
    TimeMicros(i64),
    TimestampMillis(i64),
    TimestampMicros(i64),
    TimestampNanos(i64),
    LocalTimestampMillis(i64),
    LocalTimestampMicros(i64),
    LocalTimestampNanos(i64),
    Float(f32),
    Double(f64),
    Str(&'a str),
    Enum(&'a str),
    Bytes(&'a [u8]),
    Fixed(&'a [u8]),
    Decimal(&'a [u8]),
}

/// Writes `value` into a column of `data_type`: the general path's `to_cell`, arm for
/// arm; None where it would not fit (the general path then words the rejection).
fn put(
    value: Scalar<'_>,
    data_type: &DataType,
    scale: Option<i64>,
    out: &mut ColumnBuffer,
) -> Option<()> {
    use DataType as D;
    use Scalar as S;
    let within = |i: i64, min: i64, max: i64| (min..=max).contains(&i).then_some(i);
    match (value, data_type) {
        (S::Null, _) => out.push_null(),
        (S::Bool(b), D::Boolean) => out.push_bool(b),
        (S::Int(i) | S::Date(i) | S::TimeMillis(i), D::Int16) => {
            out.push_int(within(i as i64, i16::MIN as i64, i16::MAX as i64)?)
        }
        (S::Long(i), D::Int16) => out.push_int(within(i, i16::MIN as i64, i16::MAX as i64)?),
        (S::Int(i) | S::Date(i) | S::TimeMillis(i), D::Int32 | D::Int64 | D::Date32) => {
            out.push_int(i as i64)
        }
        (S::Long(i), D::Int32 | D::Date32) => {
            out.push_int(within(i, i32::MIN as i64, i32::MAX as i64)?)
        }
        (
            S::Long(i)
            | S::TimeMicros(i)
            | S::TimestampMillis(i)
            | S::TimestampMicros(i)
            | S::LocalTimestampMillis(i)
            | S::LocalTimestampMicros(i),
            D::Int64,
        ) => out.push_int(i),
        (S::Int(i), D::Float32 | D::Float64) => out.push_float(i as f64),
        (S::Long(i), D::Float32 | D::Float64) => out.push_float(i as f64),
        (S::Float(f), D::Float32 | D::Float64) => out.push_float(f as f64),
        (S::Double(f), D::Float32 | D::Float64) => out.push_float(f),
        (S::Str(s) | S::Enum(s), D::Utf8) => out.push_text(s),
        (S::Int(i), D::Utf8) => out.push_display(i),
        (S::Long(i), D::Utf8) => out.push_display(i),
        (S::Bool(b), D::Utf8) => out.push_display(b),
        (S::Bytes(b) | S::Fixed(b), D::Binary) => out.push_bytes(b),
        (S::Str(s), D::Binary) => out.push_bytes(s.as_bytes()),
        // apache-avro cannot give back an empty decimal's bytes: the general path
        // rejects it.
        (S::Decimal(bytes), D::Decimal128(_, to)) if !bytes.is_empty() => {
            let unscaled = i128_of_be(bytes)?;
            out.push_decimal(rescale(unscaled, scale.unwrap_or(0), *to as i64)?)
        }
        (S::Int(i), D::Decimal128(_, to)) => out.push_decimal(rescale(i as i128, 0, *to as i64)?),
        (S::Long(i), D::Decimal128(_, to)) => out.push_decimal(rescale(i as i128, 0, *to as i64)?),
        (S::Date(d), D::Timestamp(unit, _)) => out.push_int(in_unit(
            d as i64 * MILLIS_PER_DAY,
            TimeUnit::Millisecond,
            unit,
        )),
        (S::TimestampMillis(t) | S::LocalTimestampMillis(t), D::Timestamp(unit, _)) => {
            out.push_int(in_unit(t, TimeUnit::Millisecond, unit))
        }
        (S::TimestampMicros(t) | S::LocalTimestampMicros(t), D::Timestamp(unit, _)) => {
            out.push_int(in_unit(t, TimeUnit::Microsecond, unit))
        }
        (S::TimestampNanos(t) | S::LocalTimestampNanos(t), D::Timestamp(unit, _)) => {
            out.push_int(in_unit(t, TimeUnit::Nanosecond, unit))
        }
        (S::Long(t), D::Timestamp(_, _)) => out.push_int(t),
        (S::TimestampMillis(t), D::Date32) => out.push_int(t.div_euclid(MILLIS_PER_DAY)),
        (S::Str(s), _) => out.push_cell(cell_of_text(s, data_type)?),
        _ => return None,
    }
    Some(())
}

/// A record's bytes being read; every read is None where apache-avro would fail or
/// read with a quirk (end of input).
struct Input<'a> {
    bytes: &'a [u8],
    max_length: usize,
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(taken)
    }

    /// apache-avro's variable-length integer: at most ten bytes, bits past 64 dropped.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for j in 0..10 {
            let (&byte, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << (j * 7);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn long(&mut self) -> Option<i64> {
        let z = self.varint()?;
        Some(if z & 1 == 0 {
            (z >> 1) as i64
        } else {
            !(z >> 1) as i64
        })
    }

    fn int(&mut self) -> Option<i32> {
        i32::try_from(self.long()?).ok()
    }

    /// A length of bytes or a string, within apache-avro's limit.
    fn length(&mut self) -> Option<usize> {
        usize::try_from(self.long()?)
            .ok()
            .filter(|n| *n <= self.max_length)
    }

    /// The item count of the next block of an array or map; 0 at its end.
    fn block(&mut self) -> Option<usize> {
        let count = self.long()?;
        let count = if count < 0 {
            self.long()?; // the block's size in bytes
            count.checked_neg()?
        } else {
            count
        };
        usize::try_from(count)
            .ok()
            .filter(|n| *n <= self.max_length)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }

    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// Reads a union's branch index: true for the value, false for null.
    fn branch(&mut self, nullable: Nullable) -> Option<bool> {
        let index = self.long()?;
        if index == nullable.value_index {
            Some(true)
        } else if index == nullable.null_index {
            Some(false)
        } else {
            None
        }
    }

    fn enum_index(&mut self, symbols: usize) -> Option<usize> {
        usize::try_from(self.int()?).ok().filter(|i| *i < symbols)
    }

    fn scalar<'k>(&mut self, kind: &'k Kind) -> Option<Scalar<'k>>
    where
        'a: 'k,
    {
        Some(match kind {
            Kind::Null => Scalar::Null,
            Kind::Boolean => match self.take(1)?[0] {
                0 => Scalar::Bool(false),
                1 => Scalar::Bool(true),
                _ => return None,
            },
            Kind::Int => Scalar::Int(self.int()?),
            Kind::Date => Scalar::Date(self.int()?),
            Kind::TimeMillis => Scalar::TimeMillis(self.int()?),
            Kind::Long => Scalar::Long(self.long()?),
            Kind::TimeMicros => Scalar::TimeMicros(self.long()?),
            Kind::TimestampMillis => Scalar::TimestampMillis(self.long()?),
            Kind::TimestampMicros => Scalar::TimestampMicros(self.long()?),
            Kind::TimestampNanos => Scalar::TimestampNanos(self.long()?),
            Kind::LocalTimestampMillis => Scalar::LocalTimestampMillis(self.long()?),
            Kind::LocalTimestampMicros => Scalar::LocalTimestampMicros(self.long()?),
            Kind::LocalTimestampNanos => Scalar::LocalTimestampNanos(self.long()?),
            Kind::Float => Scalar::Float(f32::from_le_bytes(self.fixed::<4>()?)),
            Kind::Double => Scalar::Double(f64::from_le_bytes(self.fixed::<8>()?)),
            Kind::String => Scalar::Str(self.string()?),
            Kind::Bytes => Scalar::Bytes(self.bytes()?),
            Kind::Fixed(size) => Scalar::Fixed(self.take(*size)?),
            Kind::Enum(symbols) => Scalar::Enum(&symbols[self.enum_index(symbols.len())?]),
            Kind::DecimalBytes => Scalar::Decimal(self.bytes()?),
            Kind::DecimalFixed(size) => Scalar::Decimal(self.take(*size)?),
        })
    }

    /// Reads past a value of `schema` (one [`skippable`]), checking what apache-avro
    /// checks.
    fn skip(&mut self, schema: &Schema) -> Option<()> {
        match schema {
            Schema::Record(record) => record.fields.iter().try_for_each(|f| self.skip(&f.schema)),
            Schema::Union(union) => {
                let index = usize::try_from(self.long()?).ok()?;
                self.skip(union.variants().get(index)?)
            }
            Schema::Array(array) => loop {
                match self.block()? {
                    0 => return Some(()),
                    n => (0..n).try_for_each(|_| self.skip(&array.items))?,
                }
            },
            Schema::Map(map) => loop {
                match self.block()? {
                    0 => return Some(()),
                    n => (0..n).try_for_each(|_| {
                        self.string()?;
                        self.skip(&map.types)
                    })?,
                }
            },
            Schema::Duration => self.take(12).map(drop),
            Schema::Enum(e) => self.enum_index(e.symbols.len()).map(drop),
            Schema::Decimal(d) => self.skip(&d.inner),
            other => self.scalar(&kind_of(other)?).map(drop),
        }
    }

    /// Reads one value of `schema` with apache-avro, with its quirks (a string cut
    /// short is NULL): the general path reads this field with the same code.
    fn datum(&mut self, schema: &Schema) -> Option<Value> {
        apache_avro::from_avro_datum(schema, &mut self.bytes, None).ok()
    }
}

#[cfg(test)]
mod tests;
