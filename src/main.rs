//! The `ktable` command line. Thin: parsing, logging set-up, and wiring of library parts.

use clap::{Parser, Subcommand};
use ktable::demo::{self, DemoCluster};
use ktable::server::{self, ServerConfig};
use ktable::sql::{Engine, EngineConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Materialize the tables and streams declared in SQL files and keep them live.
    /// Without --brokers, runs on an embedded Kafka cluster with demo topics that keep
    /// changing.
    Serve {
        /// Kafka bootstrap servers (host:port,...). Omit for the embedded demo cluster.
        #[arg(long, env = "KTABLE_BROKERS")]
        brokers: Option<String>,
        /// A SQL file, or a folder whose *.sql files run in name order, declaring the
        /// sources (CREATE TABLE ... WITH (topic = ...), CREATE STREAM ...).
        #[arg(long, env = "KTABLE_SQL", default_value = "sql")]
        sql: PathBuf,
        /// The PostgreSQL protocol address (loopback only until authentication exists).
        #[arg(long, env = "KTABLE_LISTEN", default_value = "127.0.0.1:5433")]
        listen: SocketAddr,
        /// Client connections served at once.
        #[arg(long, env = "KTABLE_MAX_CONNECTIONS", default_value_t = 256)]
        max_connections: usize,
        /// Prefix of the consumer group ids sources identify themselves with.
        #[arg(long, env = "KTABLE_GROUP_ID", default_value = "ktable")]
        group_id: String,
        /// How often to log each table's statistics.
        #[arg(long, env = "KTABLE_STATS_INTERVAL_SECS", default_value_t = 30)]
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
        sql,
        listen,
        max_connections,
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
    let (embedded, brokers) = match brokers {
        Some(brokers) => (None, brokers),
        None => match DemoCluster::start() {
            Ok(cluster) => {
                let brokers = cluster.brokers();
                tracing::info!(%brokers, "no --brokers given: running the embedded demo cluster");
                (Some(cluster), brokers)
            }
            Err(error) => {
                tracing::error!(%error, "cannot start the embedded Kafka cluster");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let interval = Duration::from_secs(stats_interval_secs.max(1));
    let mut config = EngineConfig::new(&brokers).group_id(group_id);
    if embedded.is_some() {
        // The in-process cluster answers a fetch only after fetch.wait.max.ms (500 ms by
        // default) instead of as soon as records arrive, as Kafka does: records took up to
        // 0.5 s to become visible (benches/freshness.rs), 12 ms at p99 with 10 ms.
        config = config.property("fetch.wait.max.ms", "10");
    }
    let server = ServerConfig {
        listen,
        max_connections,
    };
    let result = runtime.block_on(serve(
        config,
        server,
        brokers,
        sql,
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
    config: EngineConfig,
    server: ServerConfig,
    brokers: String,
    sql: PathBuf,
    stats_interval: Duration,
    with_generator: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    if with_generator {
        tokio::spawn(async move {
            if let Err(error) = demo::run_generator(brokers, 50).await {
                tracing::error!(%error, "demo generator stopped");
            }
        });
    }
    let engine = Arc::new(Engine::new(config));
    engine.run_path(engine.context(), &sql).await?;
    let listening = server::serve(Arc::clone(&engine), &server);
    tokio::pin!(listening);
    tracing::info!(
        "serving {} source(s) on {}. Connect with:  psql -h {} -p {} -U ktable",
        engine.sources().len(),
        server.listen,
        server.listen.ip(),
        server.listen.port(),
    );
    let mut tick = tokio::time::interval(stats_interval);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            result = &mut listening => {
                engine.stop();
                return Err(result.err().map_or_else(|| "the server stopped".into(), |e| e.to_string().into()));
            }
            _ = tick.tick() => {
                for source in engine.sources() {
                    let s = &source.stats;
                    tracing::info!(
                        name = %source.name, kind = %source.kind, rows = s.rows, ready = s.ready,
                        offsets = format!("{}/{}", s.offsets_done, s.offsets_total),
                        upserts = s.upserts, tombstones = s.tombstones,
                        bad_records = s.bad_records, null_keys = s.null_keys,
                        "source stats"
                    );
                }
            }
        }
    }
    tracing::info!("shutting down");
    engine.stop();
    Ok(())
}
