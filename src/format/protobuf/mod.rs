//! Protobuf values and keys in Confluent's wire format into Arrow rows of a declared
//! schema.
//!
//! Confluent's Protobuf serializers write the magic byte 0, the 4-byte schema id, then
//! the *message indexes* (which message of the schema's file the record is: a zigzag
//! varint count and as many zigzag varint indexes, the first into the file's top-level
//! messages, each next one into the previous message's nested ones; the single byte 0
//! is the first message), then the Protobuf bytes. The registry holds the schema as
//! `.proto` text (or, as Confluent's Python serializer registers it, a base64
//! `FileDescriptorProto`: both are read) with `references` to the subjects of the files
//! it imports; those are fetched too, and Google's well-known imports
//! (`google/protobuf/timestamp.proto`, the wrappers) are built in.
//!
//! The text is compiled at run time with `protox` (a protobuf compiler in Rust: no
//! `protoc` binary to install) and records are decoded with `prost-reflect` as
//! `DynamicMessage`s; a schema id is compiled once per process and kept beside the
//! cached schema ([`RegisteredSchema`]). Each record is read with the schema it was
//! written with and its fields fill the declared columns by name, so records of
//! several schema ids land together: a field added later is NULL in records written
//! before it (their schema never had it), a removed field is no longer filled, an
//! `int32` widened to `int64` fits a BIGINT column either way.
//!
//! Protobuf's own rules say what is absent: a field without presence (a proto3 scalar)
//! that is not in the bytes reads as its default (0, "", false, the first enum value);
//! a field with presence (proto3 `optional`, a message, a wrapper such as
//! `google.protobuf.Int32Value`, a `oneof` member) that is not set is NULL. Wrappers
//! read as their value and `google.protobuf.Timestamp` as a TIMESTAMP; enums as the
//! name of their value. Nested messages, repeated and map fields become JSON text in
//! Protobuf's own JSON mapping (field names as in the `.proto`), as Avro records do:
//! every PostgreSQL client can show and query JSON text, where Arrow structs and lists
//! have no wire type most drivers understand.

mod direct;

use super::cells::{cell_of_text, is_read_from_text, push_record, rescale, Cell};
use super::column_buffer::ColumnBuffer;
use super::registry::{
    blocking, split_framing, RegisteredSchema, RegistryError, SchemaKind, SchemaRegistry,
};
use super::{ColumnSource, DecodeError, DecodeOutcome, RawRecord, RecordDecoder, SourceSchema};
use arrow::datatypes::{DataType, TimeUnit};
use base64::Engine as _;
use prost_reflect::prost::Message as _;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, ReflectMessage as _,
    SerializeOptions, Value,
};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;

/// How deep references may import references.
const MAX_IMPORT_DEPTH: usize = 32;

/// A registered Protobuf schema, compiled: the file whose messages records are.
#[derive(Debug)]
pub struct ProtoSchema {
    file: FileDescriptor,
}

impl ProtoSchema {
    /// The message that `indexes` (a record's message indexes) name.
    fn message_at(&self, indexes: &[i32]) -> Result<MessageDescriptor, String> {
        let missing = || {
            format!(
                "message indexes {indexes:?} name no message of {}",
                self.file.name()
            )
        };
        let mut path = indexes.iter().map(|&i| usize::try_from(i).ok());
        let first = path.next().flatten().ok_or_else(missing)?;
        let mut message = self.file.messages().nth(first).ok_or_else(missing)?;
        for index in path {
            let index = index.ok_or_else(missing)?;
            let child = message.child_messages().nth(index);
            message = child.ok_or_else(missing)?;
        }
        Ok(message)
    }

    /// The message named `name` (its full name or its name alone), or the file's first
    /// message.
    pub(super) fn message_named(&self, name: Option<&str>) -> Result<MessageDescriptor, String> {
        let Some(name) = name else {
            return self
                .file
                .messages()
                .next()
                .ok_or_else(|| format!("{} defines no message", self.file.name()));
        };
        let pool = self.file.parent_pool();
        pool.get_message_by_name(name)
            .or_else(|| pool.get_message_by_name(&format!("{}.{name}", self.file.package_name())))
            .or_else(|| self.file.messages().find(|m| m.name() == name))
            .ok_or_else(|| format!("the schema has no message '{name}'"))
    }
}

/// The source of one file of a schema: `.proto` text or a serialized descriptor.
#[derive(Clone)]
enum Source {
    Text(String),
    Descriptor(Box<FileDescriptorProto>),
}

impl Source {
    /// A registry schema's text: base64 of a `FileDescriptorProto` (what Confluent's
    /// Python serializer registers), else `.proto` text. `.proto` text is never valid
    /// base64 (it has spaces and semicolons), so the two cannot be confused.
    fn of(text: &str) -> Self {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| FileDescriptorProto::decode(bytes.as_slice()).ok())
            .filter(|file| !file.name().is_empty())
            .map_or_else(
                || Source::Text(text.to_string()),
                |file| Source::Descriptor(Box::new(file)),
            )
    }

    fn file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self {
            Source::Text(text) => protox::file::File::from_source(name, text),
            Source::Descriptor(file) => Ok(protox::file::File::from_file_descriptor_proto(
                file.as_ref().clone(),
            )),
        }
    }
}

/// The files of one schema and its references, by import name.
struct Sources(HashMap<String, Source>);

impl protox::file::FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(source) => source.file(name),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// The compiled form of `schema` (a Protobuf schema of `registry`), compiled on first
/// use with the schemas it references and kept with it.
pub(super) fn compiled(
    registry: &SchemaRegistry,
    schema: &RegisteredSchema,
) -> Result<Arc<ProtoSchema>, RegistryError> {
    if let Some(compiled) = schema.protobuf.get() {
        return Ok(Arc::clone(compiled));
    }
    let id = schema.id;
    let bad = |reason: String| RegistryError::BadSchema { id, reason };
    if schema.kind != SchemaKind::Protobuf {
        return Err(bad(format!(
            "it is a {:?} schema, not Protobuf",
            schema.kind
        )));
    }
    let mut sources = HashMap::new();
    collect_references(registry, schema, &mut sources, 0)?;
    let root = Source::of(&schema.text);
    let root_name = match &root {
        Source::Descriptor(file) => file.name().to_string(),
        Source::Text(_) => format!("ktable/registry/schema-{id}.proto"),
    };
    sources.insert(root_name.clone(), root);
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(Sources(sources));
    resolver.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler
        .open_file(&root_name)
        .map_err(|e| bad(format!("not a Protobuf schema that compiles: {e}")))?;
    let file = compiler
        .descriptor_pool()
        .get_file_by_name(&root_name)
        .ok_or_else(|| bad("the compiled schema has no file".into()))?;
    let compiled = Arc::new(ProtoSchema { file });
    // Another thread may have compiled it meanwhile: either copy is the same.
    let _ = schema.protobuf.set(Arc::clone(&compiled));
    Ok(compiled)
}

/// Fetches the schemas `schema` references, and theirs, into `sources`.
fn collect_references(
    registry: &SchemaRegistry,
    schema: &RegisteredSchema,
    sources: &mut HashMap<String, Source>,
    depth: usize,
) -> Result<(), RegistryError> {
    for reference in &schema.references {
        if sources.contains_key(&reference.name) {
            continue;
        }
        if depth >= MAX_IMPORT_DEPTH {
            return Err(RegistryError::BadSchema {
                id: schema.id,
                reason: format!("references nest deeper than {MAX_IMPORT_DEPTH}"),
            });
        }
        let imported = registry.version(&reference.subject, reference.version)?;
        sources.insert(reference.name.clone(), Source::of(&imported.text));
        collect_references(registry, &imported, sources, depth + 1)?;
    }
    Ok(())
}

/// Splits the message indexes from the Protobuf bytes that follow them.
pub(super) fn split_indexes(payload: &[u8]) -> Result<(Vec<i32>, &[u8]), String> {
    let mut rest = payload;
    let count = read_zigzag(&mut rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    // Each index takes at least one byte.
    if count < 0 || count as usize > rest.len() {
        return Err(format!(
            "{count} message indexes do not fit in {} bytes: not Confluent's Protobuf framing",
            rest.len()
        ));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let index = read_zigzag(&mut rest)?;
        indexes.push(i32::try_from(index).map_err(|_| format!("message index {index}"))?);
    }
    Ok((indexes, rest))
}

fn read_zigzag(bytes: &mut &[u8]) -> Result<i64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("the message indexes end early")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err("a message index is longer than a varint".into())
}

/// Why a record could not be read.
pub(super) enum ReadError {
    /// The record is bad.
    Bad(String),
    /// Its schema could not be fetched now; it may be later.
    Registry(RegistryError),
}

/// Reads one framed Protobuf record with the schema it was written with: its schema
/// id, message indexes and message.
pub(super) fn read_message(
    registry: &SchemaRegistry,
    bytes: &[u8],
) -> Result<(u32, Vec<i32>, DynamicMessage), ReadError> {
    let (id, payload) = split_framing(bytes).map_err(ReadError::Bad)?;
    // Compiling a schema (and fetching its references) happens once per schema id;
    // after that both steps are cache hits that need not leave the thread.
    let schema = registry
        .schema_for_record(id)
        .and_then(|schema| match schema.protobuf.get() {
            Some(compiled) => Ok(Arc::clone(compiled)),
            None => blocking(|| compiled(registry, &schema)),
        })
        .map_err(|e| {
            if e.is_transient() {
                ReadError::Registry(e)
            } else {
                ReadError::Bad(e.to_string())
            }
        })?;
    let (indexes, payload) = split_indexes(payload).map_err(ReadError::Bad)?;
    let descriptor = schema.message_at(&indexes).map_err(ReadError::Bad)?;
    let message = DynamicMessage::decode(descriptor, payload)
        .map_err(|e| ReadError::Bad(format!("not Protobuf of its schema: {e}")))?;
    Ok((id, indexes, message))
}

/// The key text of a Protobuf key message: the field named `column`, or its only
/// field, as text.
pub(super) fn key_text(message: &DynamicMessage, column: &str) -> Result<String, String> {
    let descriptor = message.descriptor();
    let field = match descriptor.get_field_by_name(column) {
        Some(field) => field,
        None if descriptor.fields().len() == 1 => descriptor
            .fields()
            .next()
            .ok_or("the key message has no field")?,
        None => {
            return Err(format!(
                "key message {} has no field '{column}' and more than one field",
                descriptor.full_name()
            ))
        }
    };
    if field.supports_presence() && !message.has_field(&field) {
        return Err(format!("key field '{}' is not set", field.name()));
    }
    scalar_text(&message.get_field(&field), &field.kind())
        .ok_or_else(|| format!("key field '{}' is not a scalar", field.name()))
}

/// A scalar (or a wrapper of one) as key text.
fn scalar_text(value: &Value, kind: &Kind) -> Option<String> {
    Some(match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(i) => i.to_string(),
        Value::I64(i) => i.to_string(),
        Value::U32(i) => i.to_string(),
        Value::U64(i) => i.to_string(),
        Value::String(s) => s.clone(),
        Value::EnumNumber(n) => enum_name(*n, kind),
        Value::Message(m) if wrapper(&m.descriptor()) => {
            let field = m.descriptor().get_field_by_name("value")?;
            return scalar_text(&m.get_field(&field), &field.kind());
        }
        _ => return None,
    })
}

fn enum_name(number: i32, kind: &Kind) -> String {
    kind.as_enum()
        .and_then(|e| e.get_value(number))
        .map_or_else(|| number.to_string(), |v| v.name().to_string())
}

const TIMESTAMP: &str = "google.protobuf.Timestamp";

/// `google.protobuf.Int32Value` and its kind: a message around one `value`.
fn wrapper(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// The columns of a source read from a Protobuf message: `(name, type, source)` for
/// each field, nested values as JSON text.
pub fn columns_of(message: &MessageDescriptor) -> Vec<(String, DataType, ColumnSource)> {
    message
        .fields()
        .map(|field| {
            let (data_type, source) = column_type(&field);
            (field.name().to_string(), data_type, source)
        })
        .collect()
}

/// The key column a key message gives: its only field, INT or BIGINT for integers and
/// TEXT otherwise; None for a message of several fields.
pub(super) fn key_column_of(message: &MessageDescriptor) -> Option<(String, DataType)> {
    let mut fields = message.fields();
    let (field, None) = (fields.next()?, fields.next()) else {
        return None;
    };
    let data_type = match column_type(&field) {
        (DataType::Int32, ColumnSource::Field) => DataType::Int32,
        (DataType::Int64, ColumnSource::Field) => DataType::Int64,
        _ => DataType::Utf8,
    };
    Some((field.name().to_string(), data_type))
}

fn column_type(field: &FieldDescriptor) -> (DataType, ColumnSource) {
    if field.is_list() || field.is_map() {
        return (DataType::Utf8, ColumnSource::RawJson);
    }
    (kind_type(&field.kind()), ColumnSource::Field)
}

fn kind_type(kind: &Kind) -> DataType {
    match kind {
        Kind::Double => DataType::Float64,
        Kind::Float => DataType::Float32,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => DataType::Int32,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
            DataType::Int64
        }
        // Every uint64 fits, exactly.
        Kind::Uint64 | Kind::Fixed64 => DataType::Decimal128(20, 0),
        Kind::Bool => DataType::Boolean,
        Kind::String | Kind::Enum(_) => DataType::Utf8,
        Kind::Bytes => DataType::Binary,
        Kind::Message(m) if m.full_name() == TIMESTAMP => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        Kind::Message(m) if wrapper(m) => m
            .get_field_by_name("value")
            .map_or(DataType::Utf8, |f| kind_type(&f.kind())),
        Kind::Message(_) => DataType::Utf8,
    }
}

/// The fields of a message that fill the declared columns, by column.
type Plan = Arc<Vec<Option<FieldDescriptor>>>;

/// A message's direct plan, by its message indexes (None: the general path reads it).
type DirectPlanOf = (Vec<i32>, Option<direct::DirectPlan>);

/// Decodes Protobuf records into rows of a [`SourceSchema`].
pub struct ProtobufDecoder {
    schema: Arc<SourceSchema>,
    registry: Arc<SchemaRegistry>,
    /// The fields of each writer message (schema id and message indexes) by column.
    plans: HashMap<(u32, Vec<i32>), Plan>,
    /// The direct plan of each writer message seen, by schema id, then message
    /// indexes (None: the general path reads its records).
    direct_plans: HashMap<u32, Vec<DirectPlanOf>>,
    /// The direct reader's scratch: each field's last value in the current record.
    slots: Vec<direct::Slot>,
    /// False to read every record through the general path (to compare the two).
    use_direct_plans: bool,
}

impl ProtobufDecoder {
    /// A decoder for `schema`, whose format has been prepared (it holds its registry).
    pub fn new(schema: Arc<SourceSchema>, registry: Arc<SchemaRegistry>) -> Self {
        Self {
            schema,
            registry,
            plans: HashMap::new(),
            direct_plans: HashMap::new(),
            slots: Vec::new(),
            use_direct_plans: true,
        }
    }

    /// This decoder reading every record as a `DynamicMessage`, as it does the records
    /// its direct plans cannot read: the reference the direct reader is checked
    /// against (tests, the `protobuf_records` fuzz target).
    #[doc(hidden)]
    pub fn without_direct_plans(mut self) -> Self {
        self.use_direct_plans = false;
        self
    }

    /// The direct plan of the message `indexes` of schema `id`, made on first use
    /// once the general path has compiled the schema.
    fn direct_plan(&mut self, id: u32, indexes: &[i32]) -> Option<&direct::DirectPlan> {
        let known = self
            .direct_plans
            .get(&id)
            .is_some_and(|plans| plans.iter().any(|(at, _)| at == indexes));
        if !known {
            let schema = self.registry.schema_for_record(id).ok()?;
            let compiled = schema.protobuf.get()?;
            // Only indexes that name a message are kept: a producer writing endless
            // made-up indexes must not grow this map (the general path rejects them).
            let message = compiled.message_at(indexes).ok()?;
            let plan = direct::DirectPlan::compile(&message, &self.schema);
            self.direct_plans
                .entry(id)
                .or_default()
                .push((indexes.to_vec(), plan));
        }
        let plans = self.direct_plans.get(&id)?;
        plans.iter().find(|(at, _)| at == indexes)?.1.as_ref()
    }

    /// Reads `value` with its direct plan into `columns`; false when the general path
    /// must read it (the columns are then as they were).
    fn read_direct(
        &mut self,
        value: &[u8],
        slots: &mut Vec<direct::Slot>,
        columns: &mut [ColumnBuffer],
        rows: usize,
    ) -> bool {
        let Ok((id, payload)) = split_framing(value) else {
            return false;
        };
        // Message indexes [0], the first message, are one zero byte: no allocation.
        let (indexes, body) = match payload.split_first() {
            Some((0, body)) => (std::borrow::Cow::Borrowed(&[0][..]), body),
            _ => match split_indexes(payload) {
                Ok((indexes, body)) => (std::borrow::Cow::Owned(indexes), body),
                Err(_) => return false,
            },
        };
        let read = self
            .direct_plan(id, &indexes)
            .and_then(|plan| plan.read(body, slots, columns));
        if read.is_none() {
            columns.iter_mut().for_each(|c| c.truncate(rows));
        }
        read.is_some()
    }

    fn plan(&mut self, id: u32, indexes: Vec<i32>, message: &DynamicMessage) -> Plan {
        let schema = &self.schema;
        Arc::clone(self.plans.entry((id, indexes)).or_insert_with(|| {
            let descriptor = message.descriptor();
            Arc::new(
                schema
                    .arrow()
                    .fields()
                    .iter()
                    .map(|f| descriptor.get_field_by_name(f.name()))
                    .collect(),
            )
        }))
    }
}

impl RecordDecoder for ProtobufDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<DecodeOutcome, DecodeError> {
        let sources = self.schema.sources().to_vec();
        let fields: Vec<_> = self.schema.arrow().fields().iter().cloned().collect();
        let mut columns: Vec<ColumnBuffer> = fields
            .iter()
            .map(|f| ColumnBuffer::new(f.data_type(), records.len()))
            .collect();
        let mut slots = std::mem::take(&mut self.slots);
        let mut accepted = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        let key_types = self.schema.key_types();
        for (i, record) in records.iter().enumerate() {
            if let Some(reason) = super::key::key_misfit(&key_types, record.key) {
                rejected.push((i, reason));
                continue;
            }
            if self.use_direct_plans
                && self.read_direct(record.value, &mut slots, &mut columns, accepted.len())
            {
                accepted.push(i);
                continue;
            }
            let (id, indexes, message) = match read_message(&self.registry, record.value) {
                Ok(read) => read,
                Err(ReadError::Bad(reason)) => {
                    rejected.push((i, reason));
                    continue;
                }
                Err(ReadError::Registry(e)) => return Err(DecodeError::Registry(e)),
            };
            let plan = self.plan(id, indexes, &message);
            let mut json = None;
            let pushed = push_record(
                &fields,
                self.schema.on_error(),
                &mut columns,
                |c, f| match (&sources[c], &plan[c]) {
                    (ColumnSource::Field | ColumnSource::RawJson, None) => Ok(Cell::Null),
                    (ColumnSource::Field, Some(field)) => {
                        field_cell(&message, field, f.data_type(), &mut json)
                    }
                    (ColumnSource::RawJson, Some(field)) => {
                        if field.supports_presence() && !message.has_field(field) {
                            Ok(Cell::Null)
                        } else {
                            json_field(&mut json, &message, field)
                        }
                    }
                    (ColumnSource::Key | ColumnSource::Metadata(_), _) => Ok(Cell::Null),
                },
            );
            match pushed {
                Ok(()) => accepted.push(i),
                Err(reason) => rejected.push((i, reason)),
            }
        }

        self.slots = slots;
        super::cells::assemble(
            &self.schema,
            records,
            columns,
            accepted,
            rejected,
            Vec::new(),
        )
    }
}

/// A record's message as JSON text per field, made on first need.
type FieldsJson = Option<HashMap<String, Box<RawValue>>>;

/// The JSON text of `field` of `message`, in Protobuf's JSON mapping. The message is
/// written once per record, on first need, into `json`; each field keeps its text
/// (nested fields in `.proto` order, where a parsed JSON value would sort them).
fn json_field(
    json: &mut FieldsJson,
    message: &DynamicMessage,
    field: &FieldDescriptor,
) -> Result<Cell, String> {
    if json.is_none() {
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .skip_default_fields(false)
            .stringify_64_bit_integers(false);
        let mut text = serde_json::Serializer::new(Vec::new());
        message
            .serialize_with_options(&mut text, &options)
            .map_err(|e| format!("cannot be written as JSON: {e}"))?;
        let fields = serde_json::from_slice(&text.into_inner())
            .map_err(|e| format!("cannot be written as JSON: {e}"))?;
        *json = Some(fields);
    }
    Ok(json
        .as_ref()
        .and_then(|fields| fields.get(field.name()))
        .map(|raw| raw.get())
        .filter(|raw| *raw != "null")
        .map_or(Cell::Null, |raw| Cell::Text(raw.to_string())))
}

/// The cell of a declared column from `field` of `message`.
fn field_cell(
    message: &DynamicMessage,
    field: &FieldDescriptor,
    data_type: &DataType,
    json: &mut FieldsJson,
) -> Result<Cell, String> {
    if field.supports_presence() && !message.has_field(field) {
        return Ok(Cell::Null);
    }
    if field.is_list() || field.is_map() {
        return match data_type {
            DataType::Utf8 => json_field(json, message, field),
            _ => Err(format!("a repeated or map field does not fit {data_type}")),
        };
    }
    let value = message.get_field(field);
    match to_cell(&value, &field.kind(), data_type)? {
        Some(cell) => Ok(cell),
        // A nested message in a TEXT column.
        None => json_field(json, message, field),
    }
}

/// `value` as a cell of `data_type`; None for a nested message that becomes JSON text.
fn to_cell(value: &Value, kind: &Kind, data_type: &DataType) -> Result<Option<Cell>, String> {
    use DataType as D;
    let misfit = || format!("Protobuf {value:?} does not fit {data_type}");
    let cell = match (value, data_type) {
        (Value::Bool(b), D::Boolean) => Cell::Bool(*b),
        (Value::Bool(b), D::Utf8) => Cell::Text(b.to_string()),
        (Value::I32(i), _) => int_cell(i128::from(*i), data_type).ok_or_else(misfit)?,
        (Value::I64(i), _) => int_cell(i128::from(*i), data_type).ok_or_else(misfit)?,
        (Value::U32(i), _) => int_cell(i128::from(*i), data_type).ok_or_else(misfit)?,
        (Value::U64(i), _) => int_cell(i128::from(*i), data_type).ok_or_else(misfit)?,
        (Value::F32(f), D::Float32 | D::Float64) => Cell::Float(f64::from(*f)),
        (Value::F64(f), D::Float32 | D::Float64) => Cell::Float(*f),
        (Value::F32(f), D::Utf8) => Cell::Text(f.to_string()),
        (Value::F64(f), D::Utf8) => Cell::Text(f.to_string()),
        (Value::String(s), D::Utf8) => Cell::Text(s.clone()),
        (Value::String(s), D::Binary) => Cell::Bytes(s.as_bytes().to_vec()),
        (Value::Bytes(b), D::Binary) => Cell::Bytes(b.to_vec()),
        (Value::EnumNumber(n), D::Utf8) => Cell::Text(enum_name(*n, kind)),
        (Value::EnumNumber(n), D::Int16 | D::Int32 | D::Int64) => {
            int_cell(i128::from(*n), data_type).ok_or_else(misfit)?
        }
        (Value::Message(m), _) if m.descriptor().full_name() == TIMESTAMP => {
            timestamp_cell(m, data_type).ok_or_else(misfit)?
        }
        (Value::Message(m), _) if wrapper(&m.descriptor()) => {
            let field = m
                .descriptor()
                .get_field_by_name("value")
                .ok_or_else(misfit)?;
            return to_cell(&m.get_field(&field), &field.kind(), data_type);
        }
        (Value::Message(_), D::Utf8) => return Ok(None),
        (Value::String(s), _) => text_cell(s, data_type).ok_or_else(misfit)?,
        _ => return Err(misfit()),
    };
    Ok(Some(cell))
}

/// A string field's text in a number, DECIMAL, DATE or TIMESTAMP column: what Protobuf
/// has no type for is sent as text, read as the JSON format reads it; empty text,
/// which is also how proto3 writes an unset string, is NULL there.
fn text_cell(text: &str, data_type: &DataType) -> Option<Cell> {
    match cell_of_text(text, data_type) {
        None if text.is_empty() && is_read_from_text(data_type) => Some(Cell::Null),
        cell => cell,
    }
}

/// An integer as a cell of `data_type`, if it fits.
fn int_cell(i: i128, data_type: &DataType) -> Option<Cell> {
    let within = |min: i64, max: i64| {
        (i128::from(min)..=i128::from(max))
            .contains(&i)
            .then_some(Cell::Int(i as i64))
    };
    match data_type {
        DataType::Int16 => within(i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => within(i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => within(i64::MIN, i64::MAX),
        DataType::Float32 | DataType::Float64 => Some(Cell::Float(i as f64)),
        DataType::Utf8 => Some(Cell::Text(i.to_string())),
        DataType::Decimal128(_, scale) => rescale(i, 0, i64::from(*scale)).map(Cell::Decimal),
        _ => None,
    }
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A `google.protobuf.Timestamp` as a TIMESTAMP (any unit) or a DATE.
fn timestamp_cell(message: &DynamicMessage, data_type: &DataType) -> Option<Cell> {
    let seconds = match message.get_field_by_name("seconds")?.as_ref() {
        Value::I64(s) => *s,
        _ => return None,
    };
    let nanos = match message.get_field_by_name("nanos")?.as_ref() {
        Value::I32(n) => *n,
        _ => return None,
    };
    let total = i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos);
    match data_type {
        DataType::Timestamp(unit, _) => {
            let per = match unit {
                TimeUnit::Second => NANOS_PER_SECOND,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            i64::try_from(total.div_euclid(per)).ok().map(Cell::Int)
        }
        DataType::Date32 => Some(Cell::Int(seconds.div_euclid(86_400))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> ProtoSchema {
        let mut sources = HashMap::new();
        sources.insert("t.proto".to_string(), Source::of(text));
        let mut resolver = protox::file::ChainFileResolver::new();
        resolver.add(Sources(sources));
        resolver.add(protox::file::GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.open_file("t.proto").expect("compiles");
        let file = compiler
            .descriptor_pool()
            .get_file_by_name("t.proto")
            .expect("file");
        ProtoSchema { file }
    }

    const SHOP: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";
        enum Status { UNKNOWN = 0; ACTIVE = 1; }
        message Order {
            int64 id = 1;
            string name = 2;
            Status status = 3;
            google.protobuf.Int32Value qty = 4;
            optional string note = 5;
            Address address = 6;
            repeated string tags = 7;
            google.protobuf.Timestamp at = 8;
            uint64 big = 9;
            bytes raw = 10;
            map<string, int32> counts = 11;
            message Address { string city = 1; }
        }
        message Other { bool b = 1; }
    "#;

    #[test]
    fn message_indexes_are_zigzag_varints() {
        assert_eq!(split_indexes(&[0, 9]), Ok((vec![0], &[9u8][..])));
        // Count 2 (zigzag 4), indexes 1 and 0 (zigzag 2 and 0).
        assert_eq!(split_indexes(&[4, 2, 0, 7]), Ok((vec![1, 0], &[7u8][..])));
        assert!(split_indexes(&[]).is_err());
        assert!(split_indexes(&[0x80]).is_err());
        // A count larger than the bytes left.
        assert!(split_indexes(&[40, 2]).is_err());
        // A negative count.
        assert!(split_indexes(&[1, 2]).is_err());
    }

    #[test]
    fn indexes_name_top_level_and_nested_messages() {
        let schema = compile(SHOP);
        assert_eq!(schema.message_at(&[0]).unwrap().name(), "Order");
        assert_eq!(schema.message_at(&[1]).unwrap().name(), "Other");
        // The map entry is the first nested type, then Address.
        assert_eq!(schema.message_at(&[0, 1]).unwrap().name(), "Address");
        assert!(schema.message_at(&[2]).is_err());
        assert!(schema.message_at(&[-1]).is_err());
        assert_eq!(
            schema.message_named(Some("Other")).unwrap().full_name(),
            "shop.Other"
        );
        assert_eq!(schema.message_named(None).unwrap().name(), "Order");
    }

    #[test]
    fn fields_map_to_columns() {
        let schema = compile(SHOP);
        let columns = columns_of(&schema.message_named(None).unwrap());
        let types: Vec<(&str, &DataType, &ColumnSource)> =
            columns.iter().map(|(n, t, s)| (n.as_str(), t, s)).collect();
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            types,
            vec![
                ("id", &DataType::Int64, &ColumnSource::Field),
                ("name", &DataType::Utf8, &ColumnSource::Field),
                ("status", &DataType::Utf8, &ColumnSource::Field),
                ("qty", &DataType::Int32, &ColumnSource::Field),
                ("note", &DataType::Utf8, &ColumnSource::Field),
                ("address", &DataType::Utf8, &ColumnSource::Field),
                ("tags", &DataType::Utf8, &ColumnSource::RawJson),
                ("at", &utc, &ColumnSource::Field),
                ("big", &DataType::Decimal128(20, 0), &ColumnSource::Field),
                ("raw", &DataType::Binary, &ColumnSource::Field),
                ("counts", &DataType::Utf8, &ColumnSource::RawJson),
            ]
        );
    }

    #[test]
    fn absent_fields_read_as_protobuf_defines() {
        let schema = compile(SHOP);
        let order = schema.message_named(None).unwrap();
        // Only `address` set (field 6: a message with city "Lyon").
        let bytes = [0x32, 0x06, 0x0a, 0x04, b'L', b'y', b'o', b'n'];
        let message = DynamicMessage::decode(order.clone(), &bytes[..]).unwrap();
        let cell = |name: &str, data_type: DataType| {
            let field = order.get_field_by_name(name).unwrap();
            field_cell(&message, &field, &data_type, &mut None).unwrap()
        };
        // No presence: the default.
        assert_eq!(cell("id", DataType::Int64), Cell::Int(0));
        assert_eq!(cell("name", DataType::Utf8), Cell::Text(String::new()));
        assert_eq!(cell("status", DataType::Utf8), Cell::Text("UNKNOWN".into()));
        assert_eq!(cell("tags", DataType::Utf8), Cell::Text("[]".into()));
        // Presence: NULL.
        assert_eq!(cell("qty", DataType::Int32), Cell::Null);
        assert_eq!(cell("note", DataType::Utf8), Cell::Null);
        assert_eq!(cell("at", DataType::Int64), Cell::Null);
        assert_eq!(
            cell("address", DataType::Utf8),
            Cell::Text(r#"{"city":"Lyon"}"#.into())
        );
    }

    #[test]
    fn text_fills_number_decimal_date_and_timestamp_columns() {
        let text = |s: &str| Value::String(s.into());
        let cell = |value: Value, data_type: DataType| {
            to_cell(&value, &Kind::String, &data_type).map(Option::unwrap)
        };
        assert_eq!(
            cell(text("12.5"), DataType::Decimal128(10, 2)),
            Ok(Cell::Decimal(1_250))
        );
        assert_eq!(cell(text("-3"), DataType::Int16), Ok(Cell::Int(-3)));
        assert_eq!(cell(text("0.25"), DataType::Float64), Ok(Cell::Float(0.25)));
        assert_eq!(
            cell(
                text("2021-05-01T00:00:01Z"),
                DataType::Timestamp(TimeUnit::Millisecond, None)
            ),
            Ok(Cell::Int(1_619_827_201_000))
        );
        assert_eq!(cell(text("1970-01-03"), DataType::Date32), Ok(Cell::Int(2)));
        assert_eq!(cell(text(""), DataType::Decimal128(10, 2)), Ok(Cell::Null));
        assert!(cell(text("soon"), DataType::Date32).is_err());
        assert!(cell(text("99999"), DataType::Int16).is_err());
    }

    #[test]
    fn base64_descriptors_are_read_like_text() {
        let compiled = compile(SHOP);
        let proto = compiled.file.file_descriptor_proto().clone();
        let text = base64::engine::general_purpose::STANDARD.encode(proto.encode_to_vec());
        assert!(matches!(Source::of(&text), Source::Descriptor(_)));
        assert!(matches!(Source::of(SHOP), Source::Text(_)));
    }
}
