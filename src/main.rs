//! The `ktable` command line. Thin: parsing, logging set-up, and wiring of library parts.

use clap::{Parser, Subcommand};
use ktable::demo::{self, DemoCluster};
use ktable::kafka::{ConsumerConfig, JsonSerializer, StringSerializer};
use ktable::KTable;
use serde_json::Value;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ktable",
    version,
    about = "Kafka topics as live, keyed, queryable tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Materialize tables and keep them live. Without --brokers, runs on an embedded
    /// Kafka cluster with demo topics that keep changing.
    Serve {
        /// Kafka bootstrap servers (host:port,...). Omit for the embedded demo cluster.
        #[arg(long, env = "KTABLE_BROKERS")]
        brokers: Option<String>,
        /// Topics to materialize as tables of JSON values keyed by UTF-8 strings.
        /// Defaults to the demo's `users` topic on the embedded cluster.
        #[arg(long = "table", env = "KTABLE_TABLES", value_delimiter = ',')]
        tables: Vec<String>,
        /// Consumer group id the tables identify themselves with.
        #[arg(long, env = "KTABLE_GROUP_ID", default_value = "ktable")]
        group_id: String,
        /// How often to log each table's statistics.
        #[arg(long, env = "KTABLE_STATS_INTERVAL_SECS", default_value_t = 5)]
        stats_interval_secs: u64,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    let Command::Serve {
        brokers,
        tables,
        group_id,
        stats_interval_secs,
    } = Cli::parse().command;

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the Tokio runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The embedded cluster must stay on this thread; the runtime's tasks only talk to
    // it over the network.
    let (embedded, brokers, tables) = match brokers {
        Some(brokers) => (None, brokers, tables),
        None => match DemoCluster::start() {
            Ok(cluster) => {
                let brokers = cluster.brokers();
                tracing::info!(%brokers, "no --brokers given: running the embedded demo cluster");
                let tables = if tables.is_empty() {
                    vec![demo::USERS_TOPIC.to_string()]
                } else {
                    tables
                };
                (Some(cluster), brokers, tables)
            }
            Err(error) => {
                tracing::error!(%error, "cannot start the embedded Kafka cluster");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let interval = Duration::from_secs(stats_interval_secs.max(1));
    let result = runtime.block_on(serve(
        brokers,
        tables,
        group_id,
        interval,
        embedded.is_some(),
    ));
    drop(embedded);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "ktable stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(
    brokers: String,
    topics: Vec<String>,
    group_id: String,
    stats_interval: Duration,
    with_generator: bool,
) -> Result<(), ktable::KTableError> {
    if topics.is_empty() {
        tracing::warn!("no tables given (--table TOPIC): nothing to do");
        return Ok(());
    }
    if with_generator {
        let generator_brokers = brokers.clone();
        tokio::spawn(async move {
            if let Err(error) = demo::run_generator(generator_brokers, 50).await {
                tracing::error!(%error, "demo generator stopped");
            }
        });
    }
    let mut tables = Vec::new();
    for topic in &topics {
        let table: KTable<String, Value> = KTable::new(
            ConsumerConfig::new(&brokers, &group_id),
            topic.as_str(),
            StringSerializer,
            JsonSerializer,
        )
        .await?;
        table.start().await?;
        tables.push(table);
    }
    tracing::info!(
        "serving {} table(s); SQL over the PostgreSQL protocol is not built yet, \
         so this logs table statistics every {}s. Ctrl-C stops.",
        tables.len(),
        stats_interval.as_secs()
    );
    let mut tick = tokio::time::interval(stats_interval);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                for table in &tables {
                    let s = table.stats();
                    tracing::info!(
                        topic = %s.topic, keys = s.key_count, ready = s.ready,
                        offsets = format!("{}/{}", s.offsets_done, s.offsets_total),
                        upserts = s.upserts, tombstones = s.tombstones,
                        bad_records = s.bad_records, null_keys = s.null_keys,
                        "table stats"
                    );
                }
            }
        }
    }
    tracing::info!("shutting down");
    for table in &tables {
        table.stop();
        table.stopped().await;
    }
    Ok(())
}
