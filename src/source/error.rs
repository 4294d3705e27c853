//! Typed errors of sources (and so of tables and streams).

use crate::kafka::KafkaError;
use std::time::Duration;

/// What can go wrong creating, starting or waiting on a source, such as a
/// [`KTable`](crate::KTable).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The Kafka layer failed (configuration, broker, metadata request...).
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The topic does not exist, or its metadata lists no partitions.
    #[error("topic '{0}' does not exist or has no partitions")]
    TopicNotFound(String),
    /// No broker answered when another source of the engine asked either: this one
    /// waits with it.
    #[error("Kafka does not answer (the brokers are down or unreachable)")]
    KafkaUnreachable,
    /// `start` was called while the source's consumer task is already running.
    #[error("the source of topic '{0}' is already running")]
    AlreadyRunning(String),
    /// The source did not finish restoring in time.
    #[error("the source of topic '{topic}' was not ready after {after:?}: {offsets_done}/{offsets_total} offsets restored")]
    NotReady {
        /// The source's topic.
        topic: String,
        /// How long was waited.
        after: Duration,
        /// Offsets restored so far.
        offsets_done: u64,
        /// Offsets to restore in all.
        offsets_total: u64,
    },
}

impl SourceError {
    /// True when the error says Kafka could not be reached (no broker answered in
    /// time, every connection down, a name that does not resolve), as opposed to an
    /// answer that refuses (a topic that does not exist, a bad configuration). The
    /// first passes when the brokers come back, so it is worth retrying.
    pub fn is_unreachable(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode as Code;
        match self {
            SourceError::Kafka(KafkaError::Kafka(error)) => matches!(
                error.rdkafka_error_code(),
                Some(
                    Code::AllBrokersDown
                        | Code::BrokerTransportFailure
                        | Code::OperationTimedOut
                        | Code::Resolve
                        | Code::RequestTimedOut
                )
            ),
            SourceError::Kafka(KafkaError::Timeout { .. }) | SourceError::KafkaUnreachable => true,
            _ => false,
        }
    }
}
