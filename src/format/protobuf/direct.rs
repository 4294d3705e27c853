//! Protobuf bytes read straight into the columns, for messages of singular scalar
//! fields (strings, bytes, numbers, booleans, enums): the common record, and the one
//! a table restore spends its time in.
//!
//! The general path decodes each record into a `DynamicMessage` (every field stored in
//! a map, every string allocated), then looks each column's field up. A
//! [`DirectPlan`], made once per writer message (schema id and message indexes), reads
//! the wire format in one pass instead: the last value of each field kept as a slice of
//! the record (a repeated scalar field is last-one-wins in Protobuf), then each column
//! filled from its field, or its default or NULL when the field is absent, as
//! prost-reflect would give it. Field values are read with prost's own `encoding`
//! functions, the ones prost-reflect decodes with, so both paths accept exactly the
//! same wire format.
//!
//! As for Avro, the plan is only an accelerator: it gives up on anything the general
//! path might read differently (a value that does not fit its column, a group, bytes
//! that do not parse) and leaves that record to it.

use super::{text_cell, to_cell, ColumnSource, SourceSchema};
use crate::format::cells::Cell;
use crate::format::column_buffer::ColumnBuffer;
use arrow::datatypes::DataType;
use prost_reflect::prost::bytes::Bytes;
use prost_reflect::prost::encoding::{self, DecodeContext, WireType};
use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor, Value};

/// A writer message compiled into a reading plan.
#[derive(Debug)]
pub(super) struct DirectPlan {
    /// The message's fields.
    fields: Vec<PlanField>,
    /// Field number → index into `fields`, for numbers below its length.
    by_number: Vec<Option<u16>>,
    /// Per declared column: the field that fills it (None: NULL).
    columns: Vec<Option<usize>>,
}

#[derive(Debug)]
struct PlanField {
    kind: Kind,
    /// Absent means NULL (proto3 `optional`, proto2 fields); otherwise its default.
    presence: bool,
    /// The default's cell in the column this field fills (None: it does not fit, the
    /// general path words that).
    default: Option<Cell>,
    /// The column's type, when a column takes the field.
    data_type: Option<DataType>,
}

/// The last value of a field in a record: a number, or a range of the record's bytes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    Absent,
    Value(Number),
    Text(usize, usize),
    Bytes(usize, usize),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Number {
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Enum(i32),
}

impl DirectPlan {
    /// The plan of `message` for `schema`'s columns, or None when the general path must
    /// read its records (nested messages, lists, maps, groups, oneofs, extensions,
    /// required fields, a JSON column of a field, field numbers past 65,535).
    pub(super) fn compile(message: &MessageDescriptor, schema: &SourceSchema) -> Option<Self> {
        if message.extension_ranges().next().is_some() {
            return None;
        }
        let mut fields = Vec::new();
        let mut by_number: Vec<Option<u16>> = Vec::new();
        let declared = schema.arrow().fields();
        for field in message.fields() {
            if !singular_scalar(&field) {
                return None;
            }
            let number = usize::try_from(field.number())
                .ok()
                .filter(|n| *n < 65_536)?;
            if by_number.len() <= number {
                by_number.resize(number + 1, None);
            }
            by_number[number] = Some(u16::try_from(fields.len()).ok()?);
            fields.push(PlanField {
                kind: field.kind(),
                presence: field.supports_presence(),
                default: None,
                data_type: None,
            });
        }
        let mut columns = Vec::with_capacity(declared.len());
        for (column, source) in declared.iter().zip(schema.sources()) {
            let field = message.get_field_by_name(column.name());
            let taken = match (source, field) {
                (ColumnSource::Field, Some(field)) => field,
                // The general path writes the message as JSON for this column.
                (ColumnSource::RawJson, Some(_)) => return None,
                _ => {
                    columns.push(None);
                    continue;
                }
            };
            let at = usize::from(by_number[usize::try_from(taken.number()).ok()?]?);
            let plan = &mut fields[at];
            plan.data_type = Some(column.data_type().clone());
            plan.default = to_cell(&taken.default_value(), &taken.kind(), column.data_type())
                .ok()
                .flatten();
            columns.push(Some(at));
        }
        Some(Self {
            fields,
            by_number,
            columns,
        })
    }

    /// Reads one message's bytes into `columns`, with `slots` as scratch. None when the
    /// general path must read it; the caller then cuts the columns back.
    pub(super) fn read(
        &self,
        bytes: &[u8],
        slots: &mut Vec<Slot>,
        columns: &mut [ColumnBuffer],
    ) -> Option<()> {
        slots.clear();
        slots.resize(self.fields.len(), Slot::Absent);
        let mut input = bytes;
        let context = DecodeContext::default();
        while !input.is_empty() {
            let (number, wire_type) = encoding::decode_key(&mut input).ok()?;
            let known = self
                .by_number
                .get(number as usize)
                .copied()
                .flatten()
                .map(usize::from);
            let Some(at) = known else {
                // An unknown field: kept by prost-reflect, skipped here; groups are
                // left to the general path.
                if matches!(wire_type, WireType::StartGroup | WireType::EndGroup) {
                    return None;
                }
                encoding::skip_field(wire_type, number, &mut input, context.clone()).ok()?;
                continue;
            };
            // A string seen before is replaced now: prost checks every occurrence.
            if let Slot::Text(from, to) = slots[at] {
                std::str::from_utf8(&bytes[from..to]).ok()?;
            }
            let start = bytes.len() - input.len();
            slots[at] = read_value(
                &self.fields[at].kind,
                wire_type,
                &mut input,
                context.clone(),
            )
            .map(|read| match read {
                Read::Value(number) => Slot::Value(number),
                Read::Text(from, to) => Slot::Text(start + from, start + to),
                Read::Bytes(from, to) => Slot::Bytes(start + from, start + to),
            })?;
            // A string no column takes is checked now; one a column takes, when used.
            if let (Slot::Text(from, to), None) = (slots[at], &self.fields[at].data_type) {
                std::str::from_utf8(&bytes[from..to]).ok()?;
            }
        }
        for (column, field) in columns.iter_mut().zip(&self.columns) {
            let Some(at) = field else {
                column.push_null();
                continue;
            };
            let field = &self.fields[*at];
            let data_type = field.data_type.as_ref()?;
            match slots[*at] {
                Slot::Absent if field.presence => column.push_null(),
                Slot::Absent => column.push_cell(field.default.clone()?),
                Slot::Text(from, to) => {
                    let text = std::str::from_utf8(&bytes[from..to]).ok()?;
                    match data_type {
                        DataType::Utf8 => column.push_text(text),
                        DataType::Binary => column.push_bytes(text.as_bytes()),
                        // No String allocated for a number read from text.
                        _ => column.push_cell(text_cell(text, data_type)?),
                    }
                }
                Slot::Bytes(from, to) => match data_type {
                    DataType::Binary => column.push_bytes(&bytes[from..to]),
                    _ => put(
                        Value::Bytes(Bytes::copy_from_slice(&bytes[from..to])),
                        field,
                        column,
                    )?,
                },
                Slot::Value(number) => put(number.value(), field, column)?,
            }
        }
        Some(())
    }
}

impl Number {
    fn value(self) -> Value {
        match self {
            Number::I32(i) => Value::I32(i),
            Number::I64(i) => Value::I64(i),
            Number::U32(i) => Value::U32(i),
            Number::U64(i) => Value::U64(i),
            Number::F32(f) => Value::F32(f),
            Number::F64(f) => Value::F64(f),
            Number::Bool(b) => Value::Bool(b),
            Number::Enum(n) => Value::EnumNumber(n),
        }
    }
}

/// The general path's conversion of a field's value into its column.
fn put(value: Value, field: &PlanField, column: &mut ColumnBuffer) -> Option<()> {
    let data_type = field.data_type.as_ref()?;
    column.push_cell(to_cell(&value, &field.kind, data_type).ok()??);
    Some(())
}

/// A singular field of a scalar kind, outside any real `oneof`, not required.
fn singular_scalar(field: &FieldDescriptor) -> bool {
    let scalar = !matches!(field.kind(), Kind::Message(_));
    let in_oneof = field
        .containing_oneof()
        .is_some_and(|oneof| !oneof.is_synthetic());
    scalar
        && !field.is_list()
        && !field.is_map()
        && !in_oneof
        && field.cardinality() != Cardinality::Required
}

enum Read {
    Value(Number),
    /// A range of the bytes read from (relative to where the value started).
    Text(usize, usize),
    Bytes(usize, usize),
}

/// Reads one value of `kind` with prost's own merge functions (the wire type checked,
/// integers truncated as prost does).
fn read_value(
    kind: &Kind,
    wire_type: WireType,
    input: &mut &[u8],
    context: DecodeContext,
) -> Option<Read> {
    macro_rules! merged {
        ($module:ident, $initial:expr, $variant:ident) => {{
            let mut value = $initial;
            encoding::$module::merge(wire_type, &mut value, input, context).ok()?;
            Read::Value(Number::$variant(value))
        }};
    }
    Some(match kind {
        Kind::Int32 => merged!(int32, 0i32, I32),
        Kind::Sint32 => merged!(sint32, 0i32, I32),
        Kind::Sfixed32 => merged!(sfixed32, 0i32, I32),
        Kind::Int64 => merged!(int64, 0i64, I64),
        Kind::Sint64 => merged!(sint64, 0i64, I64),
        Kind::Sfixed64 => merged!(sfixed64, 0i64, I64),
        Kind::Uint32 => merged!(uint32, 0u32, U32),
        Kind::Fixed32 => merged!(fixed32, 0u32, U32),
        Kind::Uint64 => merged!(uint64, 0u64, U64),
        Kind::Fixed64 => merged!(fixed64, 0u64, U64),
        Kind::Float => merged!(float, 0f32, F32),
        Kind::Double => merged!(double, 0f64, F64),
        Kind::Bool => merged!(bool, false, Bool),
        Kind::Enum(_) => merged!(int32, 0i32, Enum),
        Kind::String | Kind::Bytes => {
            // prost's string and bytes merges: a length-delimited value that fits;
            // a string is UTF-8 (checked where it is used).
            encoding::check_wire_type(WireType::LengthDelimited, wire_type).ok()?;
            let before = input.len();
            let length = usize::try_from(encoding::decode_varint(input).ok()?).ok()?;
            if length > input.len() {
                return None;
            }
            let from = before - input.len();
            *input = &input[length..];
            if matches!(kind, Kind::String) {
                Read::Text(from, from + length)
            } else {
                Read::Bytes(from, from + length)
            }
        }
        Kind::Message(_) => return None,
    })
}

#[cfg(test)]
mod tests;
