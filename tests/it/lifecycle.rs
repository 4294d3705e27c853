//! Starting, stopping and restarting tables.

use crate::broker::{json_record, produce_all, Broker};
use crate::{eventually, json_table, READY_TIMEOUT};
use ktable::kafka::{ConsumerConfig, FetchedRecord};
use ktable::source::{Counters, Prepared, RecordSink, SinkError, Source};
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

/// A sink whose applying step waits for the test's word, so that what a source reports
/// while a batch is decoded but not applied can be seen.
struct GatedSink {
    rows: std::sync::atomic::AtomicUsize,
    /// Told once a batch is prepared and its step waits.
    prepared: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    /// The word that lets waiting steps run.
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl RecordSink for GatedSink {
    fn apply(&self, records: &[FetchedRecord<'_>], counters: &Counters) -> Result<(), SinkError> {
        self.prepare(records, counters)?(self)
    }

    fn prepare(
        &self,
        records: &[FetchedRecord<'_>],
        counters: &Counters,
    ) -> Result<Prepared<Self>, SinkError> {
        counters.upserted(records.len() as u64);
        let n = records.len();
        let _ = self.prepared.lock().unwrap().send(());
        Ok(Box::new(move |sink: &Self| {
            let _ = sink.release.lock().unwrap().recv();
            sink.rows.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }))
    }

    fn rows(&self) -> usize {
        self.rows.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A source's statistics count a record only once its change is applied: a reader
/// that sees the counts complete also sees the state complete.
#[tokio::test]
async fn statistics_never_lead_the_applied_state() {
    let broker = Broker::start();
    let topic = broker.topic("gated", 1, &[]).await;
    let records: Vec<_> = (0..20)
        .map(|i| json_record(&format!("k{i}"), json!(i)))
        .collect();
    produce_all(&broker.raw_producer(), &topic, &records).await;

    let (prepared_tx, prepared_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let sink = GatedSink {
        rows: Default::default(),
        prepared: std::sync::Mutex::new(prepared_tx),
        release: std::sync::Mutex::new(release_rx),
    };
    let config = ConsumerConfig::new(broker.brokers(), "gated-group");
    let source = Source::new(config, &topic, sink).expect("source");
    source.start().await.expect("start");

    let mut released = 0;
    while source.sink().rows() < records.len() {
        eventually("a batch prepared", || prepared_rx.try_recv().is_ok()).await;
        assert_eq!(
            source.stats().upserts as usize,
            source.sink().rows(),
            "counts include a batch that is prepared but not applied"
        );
        release_tx.send(()).expect("the step waits");
        released += 1;
        eventually("the released batch counted", || {
            source.stats().upserts as usize == source.sink().rows() && source.sink().rows() > 0
        })
        .await;
    }
    assert!(released > 0);
    assert_eq!(source.stats().upserts as usize, records.len());
    source.stop();
    drop(release_tx);
    source.stopped().await;
}
