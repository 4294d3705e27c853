//! Typed consumer and producer configuration, turned into librdkafka properties at the edge.

use super::KafkaError;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where a consumer starts when its group has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The oldest retained record.
    #[default]
    Earliest,
    /// Only records produced after the consumer starts.
    Latest,
    /// Fail instead of choosing.
    Error,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::Error => "error",
        }
    }
}

/// Which records of transactional producers a consumer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Only records of committed transactions (and non-transactional records).
    #[default]
    ReadCommitted,
    /// Every record, including those of aborted and still-open transactions.
    ReadUncommitted,
}

impl IsolationLevel {
    fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// Configuration of a [`KafkaConsumer`](super::KafkaConsumer) or a table's consumer.
///
/// ```
/// use ktable::kafka::{ConsumerConfig, IsolationLevel, OffsetReset};
///
/// let config = ConsumerConfig::new("localhost:9092", "billing")
///     .client_id("billing-1")
///     .auto_offset_reset(OffsetReset::Earliest)
///     .isolation_level(IsolationLevel::ReadCommitted)
///     .property("fetch.wait.max.ms", "50");
/// assert_eq!(config.group_id(), "billing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    brokers: String,
    group_id: String,
    client_id: Option<String>,
    offset_reset: OffsetReset,
    isolation_level: IsolationLevel,
    request_timeout: Duration,
    properties: BTreeMap<String, String>,
}

impl ConsumerConfig {
    /// A consumer of `brokers` (comma-separated `host:port` list) in consumer group `group_id`.
    pub fn new(brokers: impl Into<String>, group_id: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: group_id.into(),
            client_id: None,
            offset_reset: OffsetReset::default(),
            isolation_level: IsolationLevel::default(),
            request_timeout: Duration::from_secs(10),
            properties: BTreeMap::new(),
        }
    }

    /// The client id brokers log for this consumer.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Where to start without a committed offset (default: earliest).
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = reset;
        self
    }

    /// Which transactional records to see (default: read committed).
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// How long metadata and watermark requests may take (default: 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Any other librdkafka property; it overrides what the typed setters chose.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The bootstrap brokers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The consumer group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The isolation level in effect.
    pub fn isolation(&self) -> IsolationLevel {
        self.isolation_level
    }

    /// The timeout for metadata and watermark requests.
    pub fn timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Checks the configuration and renders it as librdkafka properties.
    pub fn to_client_config(&self) -> Result<ClientConfig, KafkaError> {
        if self.brokers.trim().is_empty() {
            return Err(KafkaError::Config("brokers must not be empty".into()));
        }
        if self.group_id.trim().is_empty() {
            return Err(KafkaError::Config("group id must not be empty".into()));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("auto.offset.reset", self.offset_reset.as_str())
            .set("isolation.level", self.isolation_level.as_str())
            // End-of-partition events are how a table knows it has caught up even when
            // the last offsets are transaction markers or compacted away.
            .set("enable.partition.eof", "true")
            // librdkafka (2.x) postpones a partition's next fetch by this much once its
            // prefetch queue is full; the default of 1 s leaves a consumer that decodes
            // and applies records (slower than the fetcher) idle for most of a restore:
            // restore throughput tripled on the restore benchmark with 10 ms.
            .set("fetch.queue.backoff.ms", "10");
        if let Some(client_id) = &self.client_id {
            config.set("client.id", client_id);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        Ok(config)
    }
}

/// Configuration of a [`KafkaProducer`](super::KafkaProducer).
///
/// Producers are **idempotent with `acks=all` by default**, as Java clients are since
/// Kafka 3.0. librdkafka's own default is not idempotent: a batch that fails with a
/// transient error (a leader moving, a request timing out, common right after a topic is
/// created) is retried while later batches of the same partition are already in flight,
/// so it can land after them, and a table built from the topic then keeps a stale value
/// for the key. An idempotent producer numbers its batches and the broker refuses them
/// out of order, so each partition keeps the order records were sent in, without
/// duplicates. It costs one extra request at start-up (the producer id) and needs
/// brokers of Kafka 0.11 or later.
///
/// ```
/// use ktable::kafka::ProducerConfig;
///
/// let config = ProducerConfig::new("localhost:9092")
///     .client_id("loader")
///     .property("linger.ms", "5");
/// assert_eq!(config.brokers(), "localhost:9092");
/// assert!(config.is_idempotent());
/// let rendered = config.to_client_config()?;
/// assert_eq!(rendered.get("enable.idempotence"), Some("true"));
/// assert_eq!(rendered.get("acks"), Some("all"));
/// # Ok::<(), ktable::kafka::KafkaError>(())
/// ```
///
/// Opting out, for a producer that may lose or reorder records on retries in exchange
/// for fewer acknowledgements (`acks` below `all` requires idempotence off):
///
/// ```
/// use ktable::kafka::ProducerConfig;
///
/// let config = ProducerConfig::new("localhost:9092")
///     .idempotence(false)
///     .property("acks", "1")
///     .to_client_config()?;
/// assert_eq!(config.get("enable.idempotence"), Some("false"));
/// assert_eq!(config.get("acks"), Some("1"));
/// # Ok::<(), ktable::kafka::KafkaError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    brokers: String,
    client_id: Option<String>,
    transactional_id: Option<String>,
    idempotence: bool,
    delivery_timeout: Duration,
    properties: BTreeMap<String, String>,
}

impl ProducerConfig {
    /// A producer to `brokers` (comma-separated `host:port` list).
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            client_id: None,
            transactional_id: None,
            idempotence: true,
            delivery_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
        }
    }

    /// The client id brokers log for this producer.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Makes the producer transactional (see [`KafkaProducer::begin_transaction`](super::KafkaProducer::begin_transaction)).
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// Whether the producer is idempotent (default: yes; see the type's documentation).
    /// Either way the producer asks for `acks=all`. A transactional producer must stay
    /// idempotent.
    pub fn idempotence(mut self, enabled: bool) -> Self {
        self.idempotence = enabled;
        self
    }

    /// How long a record may take to be acknowledged before its send fails (default: 30 s).
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Any other librdkafka property; it overrides what the typed setters chose.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The bootstrap brokers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The delivery timeout in effect.
    pub fn delivery(&self) -> Duration {
        self.delivery_timeout
    }

    /// Whether the typed setting asks for an idempotent producer (a `property` may still
    /// override it).
    pub fn is_idempotent(&self) -> bool {
        self.idempotence
    }

    /// Checks the configuration and renders it as librdkafka properties.
    pub fn to_client_config(&self) -> Result<ClientConfig, KafkaError> {
        if self.brokers.trim().is_empty() {
            return Err(KafkaError::Config("brokers must not be empty".into()));
        }
        if self.transactional_id.is_some() && !self.idempotence {
            return Err(KafkaError::Config(
                "a transactional producer must be idempotent".into(),
            ));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set(
                "delivery.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            )
            .set("enable.idempotence", self.idempotence.to_string())
            // librdkafka's default already, and the only value idempotence accepts: set
            // explicitly so that a record counts as sent only once every in-sync replica
            // has it, whatever the librdkafka version.
            .set("acks", "all");
        if let Some(client_id) = &self.client_id {
            config.set("client.id", client_id);
        }
        if let Some(id) = &self.transactional_id {
            config.set("transactional.id", id);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_config_renders_typed_settings_and_overrides() {
        let config = ConsumerConfig::new("b:9092", "g")
            .auto_offset_reset(OffsetReset::Latest)
            .isolation_level(IsolationLevel::ReadUncommitted)
            .property("isolation.level", "read_committed")
            .to_client_config()
            .unwrap();
        assert_eq!(config.get("auto.offset.reset"), Some("latest"));
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        assert_eq!(config.get("group.id"), Some("g"));
    }

    #[test]
    fn producers_are_idempotent_with_acks_all_unless_opted_out() {
        let default = ProducerConfig::new("b:9092").to_client_config().unwrap();
        assert_eq!(default.get("enable.idempotence"), Some("true"));
        assert_eq!(default.get("acks"), Some("all"));

        let opted_out = ProducerConfig::new("b:9092")
            .idempotence(false)
            .to_client_config()
            .unwrap();
        assert_eq!(opted_out.get("enable.idempotence"), Some("false"));
        assert_eq!(opted_out.get("acks"), Some("all"));

        let by_property = ProducerConfig::new("b:9092")
            .property("enable.idempotence", "false")
            .to_client_config()
            .unwrap();
        assert_eq!(by_property.get("enable.idempotence"), Some("false"));
    }

    #[test]
    fn a_transactional_producer_cannot_opt_out_of_idempotence() {
        assert!(matches!(
            ProducerConfig::new("b:9092")
                .transactional_id("tx")
                .idempotence(false)
                .to_client_config(),
            Err(KafkaError::Config(_))
        ));
    }

    #[test]
    fn empty_brokers_or_group_are_config_errors() {
        assert!(matches!(
            ConsumerConfig::new(" ", "g").to_client_config(),
            Err(KafkaError::Config(_))
        ));
        assert!(matches!(
            ConsumerConfig::new("b:1", "").to_client_config(),
            Err(KafkaError::Config(_))
        ));
        assert!(matches!(
            ProducerConfig::new("").to_client_config(),
            Err(KafkaError::Config(_))
        ));
    }
}
