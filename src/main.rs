//! The `ktable` command line. Thin: parsing, logging set-up, and wiring of library parts.

use clap::{Args, Parser, Subcommand};
use ktable::config::FileConfig;
use ktable::demo::registry::DemoRegistry;
use ktable::demo::{self, products, DemoCluster};
use ktable::ops::{Endpoint, Metrics, Phase};
use ktable::server::{self, QueryLimits, ServerConfig, ServerMetrics, TlsConfig};
use ktable::sql::{Engine, EngineConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the embedded demo serves /metrics, /healthz and /readyz (9187: the port
/// range Prometheus exporters take theirs from).
const DEMO_HTTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9187);

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
    Serve(ServeArgs),
}

/// Flags of `ktable serve`. Each is also read from a `KTABLE_*` environment variable
/// and from the `--config` file; a flag wins over the variable, which wins over the
/// file, which wins over the default.
#[derive(Args)]
struct ServeArgs {
    /// TOML file with any of the settings below, plus users, TLS files and Kafka
    /// client properties (see README).
    #[arg(long, env = "KTABLE_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (host:port,...). Omit for the embedded demo cluster.
    #[arg(long, env = "KTABLE_BROKERS")]
    brokers: Option<String>,
    /// A SQL file, or a folder whose *.sql files run in name order, declaring the
    /// sources (CREATE TABLE ... WITH (topic = ...), CREATE STREAM ...) [default: sql;
    /// the embedded demo declares its own sources when there is no ./sql]
    #[arg(long, env = "KTABLE_SQL")]
    sql: Option<PathBuf>,
    /// The PostgreSQL protocol address [default: 127.0.0.1:5433]
    #[arg(long, env = "KTABLE_LISTEN")]
    listen: Option<SocketAddr>,
    /// The HTTP endpoint for /metrics (Prometheus), /healthz and /readyz, e.g.
    /// "0.0.0.0:9187"; it has no authentication [default: none; 127.0.0.1:9187 with
    /// the embedded demo]
    #[arg(long, env = "KTABLE_HTTP")]
    http: Option<SocketAddr>,
    /// Client connections served at once [default: 256]
    #[arg(long, env = "KTABLE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections from one IP address at once, 0 for no limit
    /// [default: a quarter of --max-connections, at least 4]
    #[arg(long, env = "KTABLE_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// How long a client may take to connect and log in, e.g. "10s" [default: 10s]
    #[arg(long, env = "KTABLE_AUTHENTICATION_TIMEOUT", value_parser = humantime::parse_duration)]
    authentication_timeout: Option<Duration>,
    /// Close a logged-in session idle this long outside a transaction, e.g. "30m";
    /// "0s" for never [default: never]
    #[arg(long, env = "KTABLE_IDLE_SESSION_TIMEOUT", value_parser = humantime::parse_duration)]
    idle_session_timeout: Option<Duration>,
    /// Prefix of the consumer group ids sources identify themselves with [default: ktable]
    #[arg(long, env = "KTABLE_GROUP_ID")]
    group_id: Option<String>,
    /// Schema registry URL for Avro sources, e.g. "http://registry:8081" (basic auth as
    /// user:password@ in the URL); a source may name its own
    #[arg(long, env = "KTABLE_SCHEMA_REGISTRY")]
    schema_registry: Option<String>,
    /// How often to log each table's statistics, in seconds [default: 30]
    #[arg(long, env = "KTABLE_STATS_INTERVAL_SECS")]
    stats_interval_secs: Option<u64>,
    /// The longest one statement may run, e.g. "30s" [default: no limit]
    #[arg(long, env = "KTABLE_QUERY_TIMEOUT", value_parser = humantime::parse_duration)]
    query_timeout: Option<Duration>,
    /// The most rows one result may send [default: no limit]
    #[arg(long, env = "KTABLE_MAX_RESULT_ROWS")]
    max_result_rows: Option<u64>,
    /// The memory all queries may hold at once, e.g. "4 GiB" [default: 2 GiB]
    #[arg(long, env = "KTABLE_MEMORY_LIMIT", value_parser = ktable::config::parse_byte_size)]
    memory_limit: Option<usize>,
    /// The memory one query may hold [default: 512 MiB]
    #[arg(long, env = "KTABLE_QUERY_MEMORY_LIMIT", value_parser = ktable::config::parse_byte_size)]
    query_memory_limit: Option<usize>,
    /// The deepest expression nesting a statement may have [default: 1000]
    #[arg(long, env = "KTABLE_MAX_EXPRESSION_DEPTH")]
    max_expression_depth: Option<usize>,
    /// How many tables and views users may create in memory [default: 100]
    #[arg(long, env = "KTABLE_MAX_USER_OBJECTS")]
    max_user_objects: Option<usize>,
    /// How many Kafka tables and streams the server may serve, those of --sql included
    /// [default: 256]
    #[arg(long, env = "KTABLE_MAX_SOURCES")]
    max_sources: Option<usize>,
    /// Let statements read and write the server's files (COPY ... TO, CREATE EXTERNAL
    /// TABLE) as the server's OS user [default: false]
    #[arg(long, env = "KTABLE_ALLOW_HOST_ACCESS")]
    allow_host_access: Option<bool>,
    /// The most memory one table may hold, e.g. "8 GiB"; a table that grows past it
    /// stops ingesting (last_error in ktable_tables) [default: no limit]
    #[arg(long, env = "KTABLE_TABLE_MEMORY_LIMIT", value_parser = ktable::config::parse_byte_size)]
    table_memory_limit: Option<usize>,
    /// The most memory all tables together may hold, e.g. "16 GiB"; a table that
    /// grows while they hold more stops ingesting (last_error in ktable_tables)
    /// [default: no limit]
    #[arg(long, env = "KTABLE_TABLES_MEMORY_LIMIT", value_parser = ktable::config::parse_byte_size)]
    tables_memory_limit: Option<usize>,
    /// Changes each table or stream keeps for its subscribers (SUBSCRIBE) once
    /// subscribed to; a subscriber further behind is ended with SQLSTATE 53400
    /// [default: 100000]
    #[arg(long, env = "KTABLE_SUBSCRIBE_BUFFER")]
    subscribe_buffer: Option<usize>,
    /// Folder for table checkpoints: a restart loads each table's last checkpoint and
    /// reads only the records written since [default: none, state in memory only]
    #[arg(long, env = "KTABLE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// How often each table writes a checkpoint, e.g. "60s" [default: 60s]
    #[arg(long, env = "KTABLE_CHECKPOINT_INTERVAL", value_parser = humantime::parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// PEM certificate chain for TLS (with --tls-key).
    #[arg(long, env = "KTABLE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with --tls-cert).
    #[arg(long, env = "KTABLE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse clients that do not use TLS (needs --tls-cert and --tls-key) [default: false]
    #[arg(long, env = "KTABLE_REQUIRE_TLS")]
    require_tls: Option<bool>,
    /// At Ctrl-C or SIGTERM, how long running statements may take to finish before
    /// their connections are closed, e.g. "30s" [default: 30s]
    #[arg(long, env = "KTABLE_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    shutdown_grace: Option<Duration>,
}

/// Everything `serve` needs, flags and file merged.
struct Settings {
    brokers: Option<String>,
    /// None: `./sql`, or for the embedded demo its built-in DDL when that is missing.
    sql: Option<PathBuf>,
    server: ServerConfig,
    http: Option<SocketAddr>,
    group_id: String,
    schema_registry: Option<String>,
    stats_interval: Duration,
    kafka: Vec<(String, String)>,
    memory_limit: usize,
    query_memory_limit: usize,
    max_expression_depth: usize,
    max_user_objects: usize,
    max_sources: usize,
    allow_host_access: bool,
    state_dir: Option<PathBuf>,
    checkpoint_interval: Option<Duration>,
    table_memory_limit: Option<usize>,
    tables_memory_limit: Option<usize>,
    subscribe_buffer: Option<usize>,
}

impl ServeArgs {
    fn settings(self) -> Result<Settings, Box<dyn std::error::Error>> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
            _ => file.tls,
        };
        let brokers = self.brokers.or(file.brokers);
        let max_connections = self.max_connections.or(file.max_connections).unwrap_or(256);
        let authentication_timeout = self
            .authentication_timeout
            .or(file.authentication_timeout)
            .unwrap_or(ServerConfig::default().authentication_timeout);
        // Zero would close every connection before it could log in.
        if authentication_timeout.is_zero() {
            return Err("authentication_timeout must be longer than zero".into());
        }
        let server = ServerConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or(ServerConfig::default().listen),
            max_connections,
            max_connections_per_address: self
                .max_connections_per_address
                .or(file.max_connections_per_address)
                .unwrap_or(ServerConfig::default_per_address(max_connections)),
            authentication_timeout,
            idle_session_timeout: self
                .idle_session_timeout
                .or(file.idle_session_timeout)
                .filter(|idle| !idle.is_zero()),
            users: file.users,
            tls,
            require_tls: self.require_tls.or(file.require_tls).unwrap_or(false),
            shutdown_grace: self
                .shutdown_grace
                .or(file.shutdown_grace)
                .unwrap_or(ServerConfig::default().shutdown_grace),
            limits: QueryLimits {
                timeout: self.query_timeout.or(file.query_timeout),
                max_rows: self.max_result_rows.or(file.max_result_rows),
            },
        };
        // Only the embedded demo, on loopback, may run without authentication: with a
        // real cluster the data is someone's.
        if server.users.is_empty() && brokers.is_some() {
            return Err(
                "with --brokers, configure users to authenticate ([[users]] in the \
                        --config file); only the embedded demo runs without authentication"
                    .into(),
            );
        }
        Ok(Settings {
            brokers,
            sql: self.sql.or(file.sql),
            server,
            http: self.http.or(file.http),
            group_id: self
                .group_id
                .or(file.group_id)
                .unwrap_or_else(|| "ktable".into()),
            schema_registry: self.schema_registry.or(file.schema_registry_url),
            stats_interval: Duration::from_secs(
                self.stats_interval_secs
                    .or(file.stats_interval_secs)
                    .unwrap_or(30)
                    .max(1),
            ),
            kafka: file.kafka.into_iter().collect(),
            memory_limit: self
                .memory_limit
                .or(file.memory_limit)
                .unwrap_or(ktable::sql::DEFAULT_MEMORY_LIMIT),
            query_memory_limit: self
                .query_memory_limit
                .or(file.query_memory_limit)
                .unwrap_or(ktable::sql::DEFAULT_QUERY_MEMORY_LIMIT),
            max_expression_depth: self
                .max_expression_depth
                .or(file.max_expression_depth)
                .unwrap_or(ktable::sql::DEFAULT_MAX_EXPRESSION_DEPTH),
            max_user_objects: self
                .max_user_objects
                .or(file.max_user_objects)
                .unwrap_or(ktable::sql::DEFAULT_MAX_USER_OBJECTS),
            max_sources: self
                .max_sources
                .or(file.max_sources)
                .unwrap_or(ktable::sql::DEFAULT_MAX_SOURCES),
            allow_host_access: self
                .allow_host_access
                .or(file.allow_host_access)
                .unwrap_or(false),
            state_dir: self.state_dir.or(file.state_dir),
            checkpoint_interval: self.checkpoint_interval.or(file.checkpoint_interval),
            table_memory_limit: self.table_memory_limit.or(file.table_memory_limit),
            tables_memory_limit: self.tables_memory_limit.or(file.tables_memory_limit),
            subscribe_buffer: self.subscribe_buffer.or(file.subscribe_buffer),
        })
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        // Colour codes only where someone reads them: not in log files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    let Command::Serve(args) = Cli::parse().command;
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "bad configuration");
            return std::process::ExitCode::FAILURE;
        }
    };

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the Tokio runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The embedded cluster must stay on this thread; the runtime's tasks only talk to
    // it over the network.
    let (embedded, brokers) = match settings.brokers.clone() {
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
    let mut config = EngineConfig::new(&brokers)
        .group_id(settings.group_id.clone())
        .memory_limit(settings.memory_limit)
        .query_memory_limit(settings.query_memory_limit)
        .max_expression_depth(settings.max_expression_depth)
        .max_user_objects(settings.max_user_objects)
        .max_sources(settings.max_sources)
        .allow_host_access(settings.allow_host_access);
    if let Some(dir) = &settings.state_dir {
        config = config.state_dir(dir);
    }
    if let Some(bytes) = settings.table_memory_limit {
        config = config.table_memory_limit(bytes);
    }
    if let Some(bytes) = settings.tables_memory_limit {
        config = config.tables_memory_limit(bytes);
    }
    if let Some(changes) = settings.subscribe_buffer {
        config = config.subscribe_buffer(changes);
    }
    if let Some(interval) = settings.checkpoint_interval {
        config = config.checkpoint_interval(interval);
    }
    // The demo's Avro table reads its schemas from a registry inside the process,
    // unless a registry was given (which must then hold the demo's subjects).
    let demo_registry = match (&embedded, &settings.schema_registry) {
        (Some(_), None) => match runtime.block_on(DemoRegistry::start(products::product_schemas()))
        {
            Ok(registry) => Some(registry),
            Err(error) => {
                tracing::warn!(%error, "the demo schema registry did not start: no products table");
                None
            }
        },
        _ => None,
    };
    if let Some(url) = settings
        .schema_registry
        .clone()
        .or(demo_registry.as_ref().map(DemoRegistry::url))
    {
        config = config.schema_registry(&url);
    }
    for (key, value) in &settings.kafka {
        config = config.property(key, value);
    }
    if embedded.is_some() {
        // The in-process cluster answers a fetch only after fetch.wait.max.ms (500 ms by
        // default) instead of as soon as records arrive, as Kafka does: records took up to
        // 0.5 s to become visible (benches/freshness.rs), 12 ms at p99 with 10 ms.
        config = config.property("fetch.wait.max.ms", "10");
    }
    let demo = embedded.is_some().then_some(Demo {
        avro_table: demo_registry.is_some(),
    });
    let result = runtime.block_on(serve(config, settings, brokers, demo));
    drop(embedded);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "ktable stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where the sources are declared when neither `--sql` nor the config file says.
const DEFAULT_SQL: &str = "sql";

/// What the embedded demo runs beside the server.
struct Demo {
    /// The Avro `products` table (its registry started).
    avro_table: bool,
}

async fn serve(
    config: EngineConfig,
    settings: Settings,
    brokers: String,
    demo: Option<Demo>,
) -> Result<(), Box<dyn std::error::Error>> {
    let with_generator = demo.is_some();
    let Settings {
        sql,
        server,
        http,
        stats_interval,
        ..
    } = settings;
    if with_generator {
        tokio::spawn(async move {
            if let Err(error) = demo::run_generator(brokers, 50).await {
                tracing::error!(%error, "demo generator stopped");
            }
        });
    }
    let engine = Arc::new(Engine::new(config));
    let server_metrics = ServerMetrics::new();
    // The demo shows its metrics too: someone trying ktable sees what to scrape. Its
    // address is a default nobody asked for, so a second demo on the same machine
    // (the port taken) runs without it rather than not at all.
    let demo_default = http.is_none() && with_generator;
    let http = http.or(demo_default.then_some(DEMO_HTTP));
    let (phase, phases) = tokio::sync::watch::channel(Phase::Starting);
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut http_url = None;
    if let Some(address) = http {
        // Bound before the sources start, so that probes see "starting", not nothing.
        let metrics = Metrics::new(Arc::clone(&engine), Some(Arc::clone(&server_metrics)));
        match Endpoint::bind(address, Arc::clone(&engine), metrics).await {
            Ok(endpoint) => {
                let endpoint = endpoint.phase(phases);
                http_url = Some(format!("http://{}/metrics", endpoint.local_addr()));
                tokio::spawn(endpoint.serve(async move {
                    let _ = http_stopped.await;
                }));
            }
            Err(error) if demo_default => {
                tracing::warn!(%address, %error, "the demo's metrics endpoint is off (use --http to pick another address)");
            }
            Err(error) => return Err(error.into()),
        }
    }
    let default_sql = Path::new(DEFAULT_SQL);
    match sql {
        Some(path) => engine.run_path(engine.context(), &path).await?,
        None if with_generator && !default_sql.exists() => {
            tracing::info!(
                "no ./sql folder: declaring the demo's sources (sql/demo.sql, built in)"
            );
            engine
                .run_script(engine.context(), demo::DEMO_DDL, "the demo's sources")
                .await?
        }
        None => engine.run_path(engine.context(), default_sql).await?,
    }
    if demo.is_some_and(|d| d.avro_table) {
        // Declared here, not in sql/: that folder also starts deployments on other
        // brokers, which have no `products` topic and maybe no registry.
        if let Err(error) = engine
            .run_script(
                engine.context(),
                products::PRODUCTS_DDL,
                "the demo's products table",
            )
            .await
        {
            tracing::warn!(%error, "the demo's Avro table was not declared");
        }
    }
    phase.send_replace(Phase::Serving);
    let stopping = Arc::clone(&engine);
    let shutdown = async move {
        shutdown_signal().await;
        phase.send_replace(Phase::ShuttingDown);
        // Sources stop first: subscriptions then end on their own (their streams
        // finish), so the connections holding them close within the grace period.
        stopping.stop();
    };
    let listening = server::serve_counted(Arc::clone(&engine), &server, server_metrics, shutdown);
    tokio::pin!(listening);
    // How to connect is said by the server once it listens (with the port it got).
    tracing::info!(
        "serving {} source(s) on {}",
        engine.sources().len(),
        server.listen
    );
    if let Some(url) = &http_url {
        tracing::info!("metrics at {url} (health: /healthz, readiness: /readyz)");
    }
    let mut tick = tokio::time::interval(stats_interval);
    loop {
        tokio::select! {
            result = &mut listening => {
                drop(http_stop);
                engine.stop();
                if result.is_ok() {
                    // Shut down by a signal, after the connections closed: keep the
                    // state so the next start replays only the tail.
                    match engine.checkpoint().await {
                        Ok(written) if written > 0 => {
                            tracing::info!(tables = written, "checkpoints written")
                        }
                        Ok(_) => {}
                        Err(error) => tracing::error!(
                            %error,
                            "the shutdown checkpoint failed; the previous one stays"
                        ),
                    }
                }
                return result.map_err(|e| e.to_string().into());
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
}

/// Completes at Ctrl-C (SIGINT) or SIGTERM (what `docker stop` and Kubernetes send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
