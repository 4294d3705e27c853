//! Starting, stopping and restarting tables.

use crate::broker::{json_record, produce_all, Broker};
use crate::{eventually, json_table, READY_TIMEOUT};
use ktable::KTableError;
use serde_json::json;
use std::time::{Duration, Instant};

/// `stop()` must interrupt a consumer that waits for records that never come.
#[tokio::test]
async fn stop_returns_promptly_on_an_idle_topic() {
    let broker = Broker::start();
    let topic = broker.topic("idle", 2, &[]).await;
    let table = json_table(&broker.brokers(), &topic, "idle-group").await;
    table
        .wait_until_ready(READY_TIMEOUT)
        .await
        .expect("an empty topic is ready");
    assert!(table.is_running());
    // Let the consumer settle into waiting for records.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    table.stop();
    assert!(!table.is_running());
    tokio::time::timeout(Duration::from_secs(2), table.stopped())
        .await
        .expect("the consumer task ended within 2 s of stop()");
    eprintln!("consumer task ended {:?} after stop()", asked.elapsed());
}

#[tokio::test]
async fn a_restarted_table_keeps_its_state_and_continues() {
    let broker = Broker::start();
    let topic = broker.topic("restart", 1, &[]).await;
    let producer = broker.raw_producer();
    produce_all(&producer, &topic, &[json_record("a", json!(1))]).await;
    let table = json_table(&broker.brokers(), &topic, "restart-group").await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert!(matches!(
        table.start().await,
        Err(KTableError::AlreadyRunning(_))
    ));

    table.stop();
    table.stopped().await;
    produce_all(&producer, &topic, &[json_record("b", json!(2))]).await;
    assert_eq!(
        table.get(&"a".into()),
        Some(json!(1)),
        "state stays readable"
    );
    assert_eq!(
        table.get(&"b".into()),
        None,
        "nothing is read while stopped"
    );

    table.start().await.expect("restart");
    eventually("the record produced while stopped", || {
        table.get(&"b".into()).is_some()
    })
    .await;
    assert_eq!(table.stats().upserts, 2, "nothing was applied twice");
}

#[tokio::test]
async fn clones_share_one_state() {
    let broker = Broker::start();
    let topic = broker.topic("clones", 1, &[]).await;
    let table = json_table(&broker.brokers(), &topic, "clones-group").await;
    let clone = table.clone();
    drop(table);
    clone.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert!(
        clone.is_running(),
        "dropping one clone does not stop the table"
    );
    produce_all(
        &broker.raw_producer(),
        &topic,
        &[json_record("x", json!(true))],
    )
    .await;
    assert!(clone.wait_for_keys(1, READY_TIMEOUT).await);
    assert_eq!(clone.topic(), topic);
}
