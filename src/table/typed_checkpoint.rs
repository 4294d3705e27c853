//! Checkpoints of a typed [`KTable`](super::KTable): its map as rows of two BYTEA
//! columns, each key and value encoded with serializers the user gives (usually the
//! same types that decode the topic, such as `StringSerializer` and `JsonSerializer`),
//! and decoded back at start with the table's own deserializers.
//!
//! The cut clones the map under its read lock (lookups go on; the writer waits for
//! the copy, about as long as [`KTable::snapshot`](super::KTable::snapshot) takes);
//! encoding and writing happen on a blocking thread afterwards.

use super::map_sink::MapSink;
use crate::kafka::Serializer;
use crate::state::{CheckpointStore, CutRows};
use arrow::array::{Array, AsArray, BinaryBuilder, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::hash::Hash;
use std::sync::Arc;

/// Rows per checkpoint batch.
const BATCH_ROWS: usize = 64 * 1024;

/// A typed table's map, as a [`CheckpointStore`].
pub(crate) struct TypedCheckpointStore<K, V> {
    sink: Arc<MapSink<K, V>>,
    key_serializer: Arc<dyn Serializer<K>>,
    value_serializer: Arc<dyn Serializer<V>>,
    schema: SchemaRef,
}

impl<K, V> TypedCheckpointStore<K, V> {
    pub(crate) fn new(
        sink: Arc<MapSink<K, V>>,
        key_serializer: Arc<dyn Serializer<K>>,
        value_serializer: Arc<dyn Serializer<V>>,
    ) -> Self {
        Self {
            sink,
            key_serializer,
            value_serializer,
            schema: Arc::new(Schema::new(vec![
                Field::new("key", DataType::Binary, false),
                Field::new("value", DataType::Binary, false),
            ])),
        }
    }
}

/// What a typed table's manifest records as its declaration: the key and value types.
/// A value type whose fields changed under the same name is caught when its rows do
/// not decode (the table then restores in full).
pub(crate) fn describe_types<K, V>() -> String {
    format!(
        "typed KTable<{}, {}>",
        std::any::type_name::<K>(),
        std::any::type_name::<V>()
    )
}

impl<K, V> CheckpointStore for TypedCheckpointStore<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn checkpoint_schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn cut(&self) -> CutRows {
        let entries: Vec<(K, V)> = self
            .sink
            .map
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (keys, values) = (
            Arc::clone(&self.key_serializer),
            Arc::clone(&self.value_serializer),
        );
        let schema = Arc::clone(&self.schema);
        Box::new(move || {
            entries
                .chunks(BATCH_ROWS)
                .map(|chunk| {
                    let mut key_column = BinaryBuilder::new();
                    let mut value_column = BinaryBuilder::new();
                    for (key, value) in chunk {
                        let key = keys.serialize(key).map_err(|e| format!("a key: {e}"))?;
                        let value = values
                            .serialize(value)
                            .map_err(|e| format!("a value: {e}"))?;
                        key_column.append_value(key);
                        value_column.append_value(value);
                    }
                    RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![
                            Arc::new(key_column.finish()),
                            Arc::new(value_column.finish()),
                        ],
                    )
                    .map_err(|e| e.to_string())
                })
                .collect()
        })
    }

    fn load(&self, rows: RecordBatch) -> Result<(), String> {
        let (Some(keys), Some(values)) = (
            rows.column(0).as_binary_opt::<i32>(),
            rows.column(1).as_binary_opt::<i32>(),
        ) else {
            return Err("the checkpoint's columns are not BYTEA".into());
        };
        if keys.null_count() + values.null_count() > 0 {
            return Err("the checkpoint holds a NULL key or value".into());
        }
        let mut decoded = Vec::with_capacity(rows.num_rows());
        for (key, value) in keys.iter().zip(values.iter()) {
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            let key = self
                .sink
                .decode_key(key)
                .map_err(|e| format!("a key does not decode: {e}"))?;
            let value = self
                .sink
                .decode_value(value)
                .map_err(|e| format!("a value does not decode: {e}"))?;
            decoded.push((key, value));
        }
        self.sink.load(decoded);
        Ok(())
    }

    fn clear(&self) {
        self.sink.map.write().clear();
    }

    fn key_count(&self) -> usize {
        self.sink.map.read().len()
    }
}
