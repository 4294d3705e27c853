//! A typed consumer: librdkafka's `StreamConsumer` plus serializers for keys and values.

use super::{
    ConsumerConfig, Deserializer, Header, KafkaContext, KafkaError, Message, SerializationError,
};
use futures::{Stream, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message as _;
use std::marker::PhantomData;

/// Reads records from Kafka and decodes their keys and values.
///
/// ```no_run
/// # async fn run() -> Result<(), ktable::kafka::KafkaError> {
/// use ktable::kafka::{ConsumerConfig, JsonSerializer, KafkaConsumer, StringSerializer};
///
/// let consumer: KafkaConsumer<String, serde_json::Value, _, _> = KafkaConsumer::new(
///     ConsumerConfig::new("localhost:9092", "audit"),
///     StringSerializer,
///     JsonSerializer,
/// )?;
/// consumer.subscribe(&["orders"])?;
/// let message = consumer.recv().await?;
/// println!("{:?} at offset {}", message.key(), message.offset());
/// # Ok(()) }
/// ```
pub struct KafkaConsumer<K, V, KS, VS> {
    consumer: StreamConsumer<KafkaContext>,
    config: ConsumerConfig,
    key_serializer: KS,
    value_serializer: VS,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, KS, VS> KafkaConsumer<K, V, KS, VS>
where
    KS: Deserializer<K>,
    VS: Deserializer<V>,
{
    /// Creates the consumer; it reads nothing until [`subscribe`](Self::subscribe) or an
    /// assignment through [`inner`](Self::inner).
    pub fn new(
        config: ConsumerConfig,
        key_serializer: KS,
        value_serializer: VS,
    ) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer<KafkaContext> = config
            .to_client_config()?
            .create_with_context(KafkaContext)?;
        Ok(Self {
            consumer,
            config,
            key_serializer,
            value_serializer,
            _types: PhantomData,
        })
    }

    /// Joins the consumer group for `topics`.
    pub fn subscribe(&self, topics: &[&str]) -> Result<(), KafkaError> {
        self.consumer.subscribe(topics)?;
        Ok(())
    }

    /// Waits for the next record and decodes it. End-of-partition notices are skipped.
    pub async fn recv(&self) -> Result<Message<K, V>, KafkaError> {
        loop {
            match self.consumer.recv().await {
                Ok(raw) => return Ok(decode(&raw, &self.key_serializer, &self.value_serializer)?),
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The records as an endless stream; see [`recv`](Self::recv).
    pub fn stream(&self) -> impl Stream<Item = Result<Message<K, V>, KafkaError>> + '_ {
        self.consumer.stream().filter_map(move |next| {
            let item = match next {
                Ok(raw) => Some(
                    decode(&raw, &self.key_serializer, &self.value_serializer)
                        .map_err(KafkaError::from),
                ),
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => None,
                Err(e) => Some(Err(e.into())),
            };
            futures::future::ready(item)
        })
    }

    /// The configuration the consumer was made with.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// The underlying rdkafka consumer, for what this type does not wrap (commits,
    /// assignments, pausing).
    pub fn inner(&self) -> &StreamConsumer<KafkaContext> {
        &self.consumer
    }

    pub(crate) fn into_parts(self) -> (StreamConsumer<KafkaContext>, ConsumerConfig, KS, VS) {
        (
            self.consumer,
            self.config,
            self.key_serializer,
            self.value_serializer,
        )
    }
}

/// Decodes a raw record into a [`Message`], headers included.
fn decode<K, V>(
    raw: &BorrowedMessage<'_>,
    key_serializer: &impl Deserializer<K>,
    value_serializer: &impl Deserializer<V>,
) -> Result<Message<K, V>, SerializationError> {
    let key = raw
        .key()
        .map(|b| key_serializer.deserialize(b))
        .transpose()?;
    let value = raw
        .payload()
        .map(|b| value_serializer.deserialize(b))
        .transpose()?;
    let headers = raw
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| Header {
                    key: h.key.to_string(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Message {
        key,
        value,
        headers,
        topic: raw.topic().to_string(),
        partition: raw.partition(),
        offset: raw.offset(),
        timestamp: raw.timestamp().to_millis(),
    })
}
