//! The rdkafka client context every ktable client uses: librdkafka's logs and errors go
//! to `tracing` at fitting levels.
//!
//! End-of-partition notices are requested on purpose (they tell a table it caught up) and
//! librdkafka also reports them as client-wide errors; rdkafka's default context would
//! log each one at ERROR level, so this one drops them.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Routes librdkafka's logs and errors to `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaContext;

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // A partition's error event, which a record queue taking records by the batch
        // has librdkafka log instead of returning: handed back to that queue.
        if facility == "ERROR" {
            super::logged_errors::note(message);
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        // Client-wide errors (a broker unreachable, a connection reset) are retried by
        // librdkafka itself: worth a warning, not an alarm.
        tracing::warn!(target: "librdkafka", %error, reason, "Kafka client error");
    }
}

impl ConsumerContext for KafkaContext {}
