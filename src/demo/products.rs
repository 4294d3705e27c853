//! The demo's Avro table: a product catalogue written as Avro in Confluent's wire
//! format (magic byte, schema id, datum), key and value, with the schemas in the
//! demo's own registry, so that `format = 'avro'` runs with one command and the
//! table's columns come from the registry.

use super::registry::DemoSchema;
use apache_avro::types::Value;
use apache_avro::{Decimal, Schema};

/// Topic of the demo's Avro table.
pub const PRODUCTS_TOPIC: &str = "products";
/// How many products the catalogue holds.
pub const DEMO_PRODUCTS: u32 = 200;

/// The demo's declaration of the table: no columns, so they come from the registry
/// (the key's `sku` from `products-key`, the rest from `products-value`).
pub const PRODUCTS_DDL: &str =
    "CREATE TABLE products WITH (topic = 'products', format = 'avro', key_format = 'avro');";

const KEY_ID: u32 = 1;
const VALUE_ID: u32 = 2;

const KEY_SCHEMA: &str = r#"{"type": "record", "name": "ProductKey", "namespace": "demo",
  "fields": [{"name": "sku", "type": "string"}]}"#;

const VALUE_SCHEMA: &str = r#"{"type": "record", "name": "Product", "namespace": "demo",
  "fields": [
    {"name": "sku", "type": "string"},
    {"name": "name", "type": "string"},
    {"name": "category", "type": {"type": "enum", "name": "Category",
      "symbols": ["BOOKS", "GAMES", "MUSIC", "TOOLS"]}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
      "precision": 10, "scale": 2}},
    {"name": "stock", "type": "int"},
    {"name": "discontinued", "type": "boolean", "default": false},
    {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []}
  ]}"#;

const CATEGORIES: [&str; 4] = ["BOOKS", "GAMES", "MUSIC", "TOOLS"];

/// The schemas of the products topic, as the demo registry serves them.
pub fn product_schemas() -> Vec<DemoSchema> {
    vec![
        DemoSchema {
            subject: format!("{PRODUCTS_TOPIC}-key"),
            id: KEY_ID,
            text: KEY_SCHEMA.to_string(),
        },
        DemoSchema {
            subject: format!("{PRODUCTS_TOPIC}-value"),
            id: VALUE_ID,
            text: VALUE_SCHEMA.to_string(),
        },
    ]
}

/// Encodes products: the parsed schemas, kept for every record.
pub struct ProductEncoder {
    key: Schema,
    value: Schema,
}

impl ProductEncoder {
    /// The encoder of the demo's product schemas.
    pub fn new() -> Result<Self, apache_avro::Error> {
        // apache-avro keeps the first limit a process sets: ktable's, not its default.
        apache_avro::util::max_allocation_bytes(crate::format::MAX_AVRO_ALLOCATION);
        Ok(Self {
            key: Schema::parse_str(KEY_SCHEMA)?,
            value: Schema::parse_str(VALUE_SCHEMA)?,
        })
    }

    /// The framed key and value of product `number` at `version`, updated at
    /// `updated_at` (milliseconds since the epoch).
    pub fn product(
        &self,
        number: u32,
        version: u64,
        updated_at: i64,
    ) -> Result<(Vec<u8>, Vec<u8>), apache_avro::Error> {
        let sku = format!("sku-{number:04}");
        let key = Value::Record(vec![("sku".into(), Value::String(sku.clone()))]);
        let category = (number as usize) % CATEGORIES.len();
        let cents = 199 + (number as i64 * 37 + version as i64 * 11) % 9_800;
        let mut tags = vec![Value::String(CATEGORIES[category].to_lowercase())];
        if version % 3 == 0 {
            tags.push(Value::String("sale".into()));
        }
        let value = Value::Record(vec![
            ("sku".into(), Value::String(sku)),
            ("name".into(), Value::String(format!("Product {number}"))),
            (
                "category".into(),
                Value::Enum(category as u32, CATEGORIES[category].into()),
            ),
            (
                "price".into(),
                Value::Decimal(Decimal::from(cents.to_be_bytes())),
            ),
            (
                "stock".into(),
                Value::Int(((number as u64 * 13 + version * 7) % 500) as i32),
            ),
            ("discontinued".into(), Value::Boolean(number % 50 == 49)),
            ("updated_at".into(), Value::TimestampMillis(updated_at)),
            ("tags".into(), Value::Array(tags)),
        ]);
        Ok((
            framed(KEY_ID, apache_avro::to_avro_datum(&self.key, key)?),
            framed(VALUE_ID, apache_avro::to_avro_datum(&self.value, value)?),
        ))
    }
}

/// Confluent's framing: magic byte 0, the schema id (big-endian), the datum.
fn framed(id: u32, datum: Vec<u8>) -> Vec<u8> {
    [&[0u8][..], &id.to_be_bytes(), &datum].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_read_back_with_their_schemas() {
        let encoder = ProductEncoder::new().expect("schemas");
        let (key, value) = encoder.product(7, 3, 1_700_000_000_000).expect("encoded");
        assert_eq!(&key[..5], &[0, 0, 0, 0, KEY_ID as u8]);
        let read =
            apache_avro::from_avro_datum(&encoder.value, &mut &value[5..], None).expect("decoded");
        let Value::Record(fields) = read else {
            panic!("not a record: {read:?}");
        };
        assert_eq!(fields[0].1, Value::String("sku-0007".into()));
        assert_eq!(fields[6].1, Value::TimestampMillis(1_700_000_000_000));
    }
}
