//! A long random sequence of every kind of record, checked against a model `HashMap`.

use crate::broker::{produce_all, Broker, RawRecord};
use crate::{eventually, json_table, READY_TIMEOUT};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;

const RECORDS: usize = 10_000;
const KEYS: u32 = 300;

/// What the table should contain and count after applying `records` in order.
#[derive(Default)]
struct Model {
    map: HashMap<String, Value>,
    upserts: u64,
    tombstones: u64,
    null_keys: u64,
    bad: u64,
}

fn random_records(seed: u64) -> (Vec<RawRecord>, Model) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut records = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let key = format!("key-{}", rng.random_range(0..KEYS));
        let roll = rng.random_range(0..100);
        let record: RawRecord = if roll < 60 {
            let value = json!({ "seq": i, "score": rng.random_range(-1000..1000) });
            model.map.insert(key.clone(), value.clone());
            model.upserts += 1;
            (
                Some(key.into_bytes()),
                Some(serde_json::to_vec(&value).unwrap()),
            )
        } else if roll < 80 {
            model.map.remove(&key);
            model.tombstones += 1;
            (Some(key.into_bytes()), None)
        } else if roll < 88 {
            model.null_keys += 1;
            (None, Some(b"{\"orphan\":true}".to_vec()))
        } else if roll < 96 {
            model.bad += 1;
            (Some(key.into_bytes()), Some(b"{\"truncated\":".to_vec()))
        } else {
            model.bad += 1;
            (Some(vec![0xff, 0x00, 0xfe]), Some(b"{}".to_vec()))
        };
        records.push(record);
    }
    (records, model)
}

fn seed() -> u64 {
    std::env::var("KTABLE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126)
}

fn assert_matches_model(table: &ktable::KTable<String, Value>, model: &Model, seed: u64) {
    let stats = table.stats();
    assert_eq!(stats.upserts, model.upserts, "upserts (seed {seed})");
    assert_eq!(
        stats.tombstones, model.tombstones,
        "tombstones (seed {seed})"
    );
    assert_eq!(stats.null_keys, model.null_keys, "null keys (seed {seed})");
    assert_eq!(stats.bad_records, model.bad, "bad records (seed {seed})");
    assert_eq!(table.snapshot(), model.map, "table contents (seed {seed})");
}

#[tokio::test]
async fn restore_of_a_random_sequence_equals_the_model() {
    let seed = seed();
    let (records, model) = random_records(seed);
    let broker = Broker::start();
    let topic = broker.topic("random-restore", 4, &[]).await;
    produce_all(&broker.raw_producer(), &topic, &records).await;

    let table = json_table(&broker.brokers(), &topic, "random-restore").await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");
    assert_matches_model(&table, &model, seed);
}

#[tokio::test]
async fn live_apply_of_a_random_sequence_equals_the_model() {
    let seed = seed() + 1;
    let (records, model) = random_records(seed);
    let broker = Broker::start();
    let topic = broker.topic("random-live", 3, &[]).await;
    let table = json_table(&broker.brokers(), &topic, "random-live").await;
    table.wait_until_ready(READY_TIMEOUT).await.expect("ready");

    produce_all(&broker.raw_producer(), &topic, &records).await;
    eventually("every record applied", || {
        let s = table.stats();
        (s.upserts + s.tombstones + s.null_keys + s.bad_records) as usize == RECORDS
    })
    .await;
    assert_matches_model(&table, &model, seed);
}
