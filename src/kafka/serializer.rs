//! Pluggable conversion between Kafka's bytes and Rust values.
//!
//! Two traits serve keys and values alike: producers need [`Serializer`], consumers and
//! tables need only [`Deserializer`] (so a read-only table type need not be
//! `Serialize`). The formats here implement both. A serializer is a small, usually
//! zero-sized value; it must be `Send + Sync` because decoding happens on the table's
//! background task while users share handles.

use super::SerializationError;
use serde::{de::DeserializeOwned, Serialize};

/// Converts `T` into the bytes stored in a Kafka key or value.
///
/// ```
/// use ktable::kafka::{Deserializer, JsonSerializer, Serializer};
///
/// let bytes = JsonSerializer.serialize(&vec![1, 2]).unwrap();
/// assert_eq!(bytes, b"[1,2]");
/// let back: Vec<u32> = JsonSerializer.deserialize(&bytes).unwrap();
/// assert_eq!(back, vec![1, 2]);
/// ```
pub trait Serializer<T: ?Sized>: Send + Sync + 'static {
    /// Encodes `value` into bytes.
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerializationError>;
}

/// Converts the bytes of a Kafka key or value read from Kafka into `T`.
pub trait Deserializer<T>: Send + Sync + 'static {
    /// Decodes bytes read from Kafka.
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerializationError>;
}

/// JSON through serde, for any `T: Serialize + DeserializeOwned`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl<T: Serialize + ?Sized> Serializer<T> for JsonSerializer {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerializationError> {
        serde_json::to_vec(value).map_err(|e| SerializationError::new("json", e.to_string()))
    }
}

impl<T: DeserializeOwned> Deserializer<T> for JsonSerializer {
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerializationError> {
        // JSON is UTF-8: checked once for the whole value, then read as text, which
        // serde_json does not check again string by string (a slice it checks at
        // each string: ~5% of a typed restore's samples). A value that is not UTF-8
        // is read as bytes, for serde_json's own error and position.
        let decoded = match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        };
        decoded.map_err(|e| SerializationError::new("json", e.to_string()))
    }
}

/// UTF-8 text, taken as it is (no quotes, unlike JSON strings).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerializer;

impl Serializer<String> for StringSerializer {
    fn serialize(&self, value: &String) -> Result<Vec<u8>, SerializationError> {
        Ok(value.as_bytes().to_vec())
    }
}

impl Deserializer<String> for StringSerializer {
    fn deserialize(&self, bytes: &[u8]) -> Result<String, SerializationError> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| SerializationError::new("string", e.to_string()))
    }
}

/// The raw bytes, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl Serializer<Vec<u8>> for BytesSerializer {
    fn serialize(&self, value: &Vec<u8>) -> Result<Vec<u8>, SerializationError> {
        Ok(value.clone())
    }
}

impl Deserializer<Vec<u8>> for BytesSerializer {
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, SerializationError> {
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        name: String,
        age: u32,
    }

    #[test]
    fn json_round_trips_structs_and_rejects_garbage() {
        let user = User {
            name: "ada".into(),
            age: 36,
        };
        let bytes = JsonSerializer.serialize(&user).unwrap();
        let back: User = JsonSerializer.deserialize(&bytes).unwrap();
        assert_eq!(back, user);
        let err = Deserializer::<User>::deserialize(&JsonSerializer, b"{not json").unwrap_err();
        assert_eq!(err.format, "json");
    }

    #[test]
    fn json_reads_escapes_and_wide_characters_and_rejects_invalid_utf8() {
        let back: User = JsonSerializer
            .deserialize("{\"name\":\"\\u00e9a\\\"d\u{1F600}\",\"age\":1}".as_bytes())
            .unwrap();
        assert_eq!(back.name, "\u{e9}a\"d\u{1F600}");
        // Invalid UTF-8 inside a string is an error, as serde_json reports it for bytes.
        let err =
            Deserializer::<User>::deserialize(&JsonSerializer, b"{\"name\":\"\xff\",\"age\":1}")
                .unwrap_err();
        assert_eq!(err.format, "json");
    }

    #[test]
    fn string_rejects_invalid_utf8() {
        assert_eq!(StringSerializer.deserialize(b"abc").unwrap(), "abc");
        assert!(StringSerializer.deserialize(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn bytes_are_unchanged() {
        let raw = vec![0u8, 255, 7];
        assert_eq!(BytesSerializer.deserialize(&raw).unwrap(), raw);
        assert_eq!(BytesSerializer.serialize(&raw).unwrap(), raw);
    }
}
