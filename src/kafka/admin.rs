//! What a checkpoint needs to know about a topic beyond its partitions: its topic id
//! (a topic deleted and created again under the same name gets a new one) and its
//! `delete.retention.ms` (how long tombstones are kept once compaction reaches them).
//!
//! rust-rdkafka has no `DescribeTopics`, the only admin call that returns the topic id,
//! so it is called here through librdkafka's C API (re-exported by rdkafka as
//! `bindings`), on an admin client that also reads the topic's configuration. Both
//! facts are optional: the in-process MockCluster answers neither, and a broker may
//! deny them; the caller then checks what it can without them.

use super::{ConsumerConfig, KafkaError};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::bindings as rd;
use rdkafka::client::{Client, DefaultClientContext};
use std::ffi::{CStr, CString};
use std::time::Duration;

/// Facts about a topic that its partition metadata does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicFacts {
    /// The topic id (base64, as Kafka's tools print it), if the broker told it.
    pub topic_id: Option<String>,
    /// The topic's `delete.retention.ms`, if the broker told it.
    pub delete_retention: Option<Duration>,
}

/// Asks the cluster for `topic`'s id and `delete.retention.ms`. Blocks: call it from a
/// blocking task. Only building the admin client fails; facts the broker does not give
/// are `None`.
pub fn describe_topic(
    config: &ConsumerConfig,
    topic: &str,
    timeout: Duration,
) -> Result<TopicFacts, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.to_client_config()?.create()?;
    let topic_id = topic_id(admin.inner(), topic, timeout);
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let delete_retention = match futures::executor::block_on(
        admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &options),
    ) {
        Ok(results) => results
            .into_iter()
            .filter_map(Result::ok)
            .find_map(|resource| {
                resource
                    .get("delete.retention.ms")
                    .and_then(|entry| entry.value.as_deref())
                    .and_then(|ms| ms.parse::<u64>().ok())
            })
            .map(Duration::from_millis),
        Err(error) => {
            tracing::debug!(topic, %error, "cannot read the topic's configuration");
            None
        }
    };
    Ok(TopicFacts {
        topic_id,
        delete_retention,
    })
}

/// `DescribeTopics` for one topic; None when the broker does not answer it.
fn topic_id(
    client: &Client<DefaultClientContext>,
    topic: &str,
    timeout: Duration,
) -> Option<String> {
    let name = CString::new(topic).ok()?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: every object created here is destroyed before returning; the result's
    // topic descriptions and the uuid string belong to the event and are copied out
    // before the event is destroyed; `names` outlives the collection built from it
    // (librdkafka copies the names).
    unsafe {
        let rk = client.native_ptr();
        let queue = rd::rd_kafka_queue_new(rk);
        if queue.is_null() {
            return None;
        }
        let mut names = [name.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        rd::rd_kafka_DescribeTopics(rk, topics, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms);
        let mut id = None;
        if !event.is_null() {
            let result = rd::rd_kafka_event_DescribeTopics_result(event);
            if rd::rd_kafka_event_error(event)
                == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                && !result.is_null()
            {
                let mut count = 0usize;
                let descriptions = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
                if count > 0 && !descriptions.is_null() {
                    let description = *descriptions;
                    let error = rd::rd_kafka_TopicDescription_error(description);
                    let ok = error.is_null()
                        || rd::rd_kafka_error_code(error)
                            == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
                    let uuid = rd::rd_kafka_TopicDescription_topic_id(description);
                    if ok && !uuid.is_null() {
                        let text = rd::rd_kafka_Uuid_base64str(uuid);
                        if !text.is_null() {
                            let text = CStr::from_ptr(text).to_string_lossy().into_owned();
                            // The all-zero id means "unknown" (brokers before topic ids).
                            if text != "AAAAAAAAAAAAAAAAAAAAAA" {
                                id = Some(text);
                            }
                        }
                    }
                }
            } else {
                tracing::debug!(topic, "the broker did not describe the topic (no topic id)");
            }
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_TopicCollection_destroy(topics);
        rd::rd_kafka_queue_destroy(queue);
        id
    }
}
