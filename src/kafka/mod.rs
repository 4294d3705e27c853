//! The Kafka edge of ktable: typed configuration, producers, consumers and messages.
//!
//! librdkafka is configured with strings; everything above this module is typed. A
//! [`Message`] carries what Kafka really has — an optional key, an optional value (a
//! `None` value is a tombstone), headers, topic, partition, offset and timestamp — so
//! the table layer can apply Kafka's semantics without guessing.

mod admin;
mod config;
mod consumer;
mod context;
mod error;
mod fetched;
mod logged_errors;
mod message;
mod producer;
mod record_queue;
mod serializer;
mod watermarks;

pub use admin::{describe_topic, TopicFacts};
pub use config::{ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig};
pub use consumer::KafkaConsumer;
pub use context::KafkaContext;
pub use error::{KafkaError, SerializationError};
pub use fetched::FetchedRecord;
pub use message::{Header, Message};
pub use producer::{Delivery, KafkaProducer, Record};
pub use record_queue::{RecordQueue, RecordQueueError};
pub use serializer::{BytesSerializer, Deserializer, JsonSerializer, Serializer, StringSerializer};
pub use watermarks::cached_high_watermark;
