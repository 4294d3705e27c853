//! A typed producer: librdkafka's `FutureProducer` plus serializers for keys and values.

use super::{Header, KafkaContext, KafkaError, ProducerConfig, Serializer};
use rdkafka::message::{Header as RdHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::marker::PhantomData;
use std::time::Duration;

/// Where Kafka stored a produced record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The partition the record went to.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
}

/// A record to produce: every part Kafka allows, each optional but the topic.
///
/// ```
/// use ktable::kafka::Record;
///
/// let key = "user-1".to_string();
/// // No value: a tombstone that deletes `user-1` from a compacted topic.
/// let delete = Record::<String, ()>::new("users").key(&key).header("source", Some(b"admin"));
/// ```
#[derive(Debug, Clone)]
pub struct Record<'a, K, V> {
    topic: &'a str,
    key: Option<&'a K>,
    value: Option<&'a V>,
    headers: Vec<Header>,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

impl<'a, K, V> Record<'a, K, V> {
    /// A record for `topic` with no key, no value (a tombstone) and no headers yet.
    pub fn new(topic: &'a str) -> Self {
        Self {
            topic,
            key: None,
            value: None,
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        }
    }

    /// Sets the key (it also chooses the partition unless one is given).
    pub fn key(mut self, key: &'a K) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the value; without one the record is a tombstone.
    pub fn value(mut self, value: &'a V) -> Self {
        self.value = Some(value);
        self
    }

    /// Adds a header; `None` is a null header value.
    pub fn header(mut self, key: impl Into<String>, value: Option<&[u8]>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
        });
        self
    }

    /// Sends to this partition instead of the key's.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create time in milliseconds since the Unix epoch.
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }
}

/// Sends typed records to Kafka.
///
/// ```no_run
/// # async fn run() -> Result<(), ktable::kafka::KafkaError> {
/// use ktable::kafka::{JsonSerializer, KafkaProducer, ProducerConfig, StringSerializer};
///
/// let producer = KafkaProducer::new(
///     ProducerConfig::new("localhost:9092"),
///     StringSerializer,
///     JsonSerializer,
/// )?;
/// let key = "user-1".to_string();
/// producer.send("users", Some(&key), Some(&serde_json::json!({"name": "Ada"}))).await?;
/// producer.send_tombstone("users", &key).await?;
/// # Ok(()) }
/// ```
pub struct KafkaProducer<K, V, KS, VS> {
    producer: FutureProducer<KafkaContext>,
    config: ProducerConfig,
    key_serializer: KS,
    value_serializer: VS,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V, KS, VS> KafkaProducer<K, V, KS, VS>
where
    KS: Serializer<K>,
    VS: Serializer<V>,
{
    /// Creates the producer. A transactional producer also registers its transactional id
    /// with the cluster here, so that it can begin transactions right away.
    pub fn new(
        config: ProducerConfig,
        key_serializer: KS,
        value_serializer: VS,
    ) -> Result<Self, KafkaError> {
        let client_config = config.to_client_config()?;
        let producer: FutureProducer<KafkaContext> =
            client_config.create_with_context(KafkaContext)?;
        if client_config.get("transactional.id").is_some() {
            producer.init_transactions(config.delivery())?;
        }
        Ok(Self {
            producer,
            config,
            key_serializer,
            value_serializer,
            _types: PhantomData,
        })
    }

    /// Sends one record and waits for the broker's acknowledgement.
    /// `value: None` sends a tombstone.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&K>,
        value: Option<&V>,
    ) -> Result<Delivery, KafkaError> {
        let mut record = Record::new(topic);
        record.key = key;
        record.value = value;
        self.send_record(record).await
    }

    /// Sends a tombstone for `key`: the record that deletes it from a table.
    pub async fn send_tombstone(&self, topic: &str, key: &K) -> Result<Delivery, KafkaError> {
        self.send_record(Record::new(topic).key(key)).await
    }

    /// Sends a record with headers, partition or timestamp.
    pub async fn send_record(&self, record: Record<'_, K, V>) -> Result<Delivery, KafkaError> {
        let key = record
            .key
            .map(|k| self.key_serializer.serialize(k))
            .transpose()?;
        let value = record
            .value
            .map(|v| self.value_serializer.serialize(v))
            .transpose()?;
        let mut raw: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(record.topic);
        if let Some(key) = &key {
            raw = raw.key(key.as_slice());
        }
        if let Some(value) = &value {
            raw = raw.payload(value.as_slice());
        }
        if let Some(partition) = record.partition {
            raw = raw.partition(partition);
        }
        if let Some(timestamp) = record.timestamp {
            raw = raw.timestamp(timestamp);
        }
        if !record.headers.is_empty() {
            let headers = record
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |headers, h| {
                    headers.insert(RdHeader {
                        key: &h.key,
                        value: h.value.as_deref(),
                    })
                });
            raw = raw.headers(headers);
        }
        let (partition, offset) = self
            .producer
            .send(raw, self.config.delivery())
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| KafkaError::Kafka(e))?;
        Ok(Delivery { partition, offset })
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)?;
        Ok(())
    }

    /// Starts a transaction (the producer must have a transactional id).
    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// Commits the open transaction: its records become visible to read-committed readers.
    pub fn commit_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.commit_transaction(timeout)?;
        Ok(())
    }

    /// Aborts the open transaction: read-committed readers never see its records.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.abort_transaction(timeout)?;
        Ok(())
    }

    /// The underlying rdkafka producer.
    pub fn inner(&self) -> &FutureProducer<KafkaContext> {
        &self.producer
    }
}
