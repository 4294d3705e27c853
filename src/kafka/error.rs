//! Typed errors of the Kafka layer.

use std::time::Duration;

/// Everything that can go wrong talking to Kafka through this crate.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A configuration value is missing or invalid (checked before librdkafka sees it).
    #[error("invalid Kafka configuration: {0}")]
    Config(String),
    /// librdkafka reported an error (connection, broker, protocol, producer queue...).
    #[error("Kafka error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A key or value could not be converted to or from bytes.
    #[error(transparent)]
    Serialization(#[from] SerializationError),
    /// The queue that a source reads its partitions' records from could not be made.
    #[error(transparent)]
    RecordQueue(#[from] super::RecordQueueError),
    /// An operation did not complete in time.
    #[error("timed out after {after:?} while {operation}")]
    Timeout {
        /// What was being waited for.
        operation: String,
        /// How long it was waited for.
        after: Duration,
    },
}

/// A key or value that could not be encoded or decoded by a [`Serializer`](super::Serializer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format}: {message}")]
pub struct SerializationError {
    /// The format that failed, e.g. `"json"`.
    pub format: &'static str,
    /// Why it failed.
    pub message: String,
}

impl SerializationError {
    /// Builds an error for `format` with a human-readable reason.
    pub fn new(format: &'static str, message: impl Into<String>) -> Self {
        Self {
            format,
            message: message.into(),
        }
    }
}
