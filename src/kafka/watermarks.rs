//! The high watermark a consumer last saw, without asking the broker.
//!
//! librdkafka keeps each partition's high watermark from its last fetch response
//! (`rd_kafka_get_watermark_offsets`), so a lag metric read at every scrape costs a
//! lock inside librdkafka, not a request; rdkafka 0.39 only wraps the variant that
//! asks the broker (`fetch_watermarks`), hence the one FFI call here.

use rdkafka::bindings::{rd_kafka_get_watermark_offsets, rd_kafka_resp_err_t};
use rdkafka::consumer::Consumer;
use std::ffi::CString;

/// The high watermark of `topic`/`partition` as of `consumer`'s last fetch; `None`
/// before its first fetch of the partition.
pub fn cached_high_watermark<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed; the topic is
    // a NUL-terminated string that outlives the call; librdkafka writes only the two
    // out-parameters, which are valid for writes.
    let error = unsafe {
        rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}
