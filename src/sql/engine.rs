//! [`Engine`]: Kafka sources declared in SQL, queried through DataFusion.

use super::ddl::{self, Ddl, SourceDef, SourceKind};
use super::guard::{Checked, Refusal, StatementGuard};
use super::host_access::NoHostAccess;
use super::memory::SessionMemoryPool;
use super::registry::{Inserted, RegisteredSource, Registry, SourceHandle, SourceInfo};
use super::shape::ShapeCache;
use super::source_start::StartSettings;
use super::statement::StatementKind;
use super::system::{SystemTable, SYSTEM_TABLE};
use super::{bounded_functions, script, SqlError};
use crate::kafka::ConsumerConfig;
use crate::source::{Source, SourceError};
use crate::stream::{StreamSink, StreamStore};
use crate::table::columnar::{ColumnarSink, ColumnarTable, MemoryBudget};
use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the engine's sources read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    brokers: String,
    group_id: String,
    request_timeout: Duration,
    properties: Vec<(String, String)>,
    pub(super) guard: StatementGuard,
    memory_limit: usize,
    query_memory_limit: usize,
    max_user_objects: usize,
    max_sources: usize,
    state_dir: Option<std::path::PathBuf>,
    checkpoint_interval: Duration,
    table_memory_limit: Option<usize>,
    tables_memory_limit: Option<usize>,
    schema_registry: Option<String>,
    pub(super) subscribe_buffer: usize,
}

/// How many tables and views users may create in memory, by default.
pub const DEFAULT_MAX_USER_OBJECTS: usize = 100;

/// How many Kafka tables and streams one engine may serve, by default. Each holds a
/// consumer (librdkafka's threads and buffers) and an applying thread, so a writer
/// declaring sources without end would exhaust the host's threads and memory.
pub const DEFAULT_MAX_SOURCES: usize = 256;

/// The memory all queries of an engine may hold at once, by default.
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;
/// The memory one query (one session's running statement) may hold, by default.
pub const DEFAULT_QUERY_MEMORY_LIMIT: usize = 512 << 20;

impl EngineConfig {
    /// Sources read from `brokers` (comma-separated `host:port` list).
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: "ktable".into(),
            request_timeout: Duration::from_secs(10),
            properties: Vec::new(),
            guard: StatementGuard::default(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            query_memory_limit: DEFAULT_QUERY_MEMORY_LIMIT,
            max_user_objects: DEFAULT_MAX_USER_OBJECTS,
            max_sources: DEFAULT_MAX_SOURCES,
            state_dir: None,
            checkpoint_interval: crate::state::DEFAULT_CHECKPOINT_INTERVAL,
            table_memory_limit: None,
            tables_memory_limit: None,
            schema_registry: None,
            subscribe_buffer: crate::changefeed::DEFAULT_CAPACITY,
        }
    }

    /// The schema registry (`http(s)://[user:password@]host:port`) of sources whose
    /// format needs one and that name none (`WITH (schema_registry = ...)`).
    pub fn schema_registry(mut self, url: impl Into<String>) -> Self {
        self.schema_registry = Some(url.into());
        self
    }

    /// How many changes each table or stream keeps for its subscribers once
    /// subscribed to (default 100,000): a subscriber further behind is ended with an
    /// error naming the offsets to resume from, and resuming `AS OF OFFSETS` works as
    /// far back as this.
    pub fn subscribe_buffer(mut self, changes: usize) -> Self {
        self.subscribe_buffer = changes.max(1);
        self
    }

    /// How many tables, views and schemas users may create in memory with `CREATE
    /// TABLE`, `CREATE TABLE AS`, `CREATE VIEW`, `CREATE SCHEMA` (default
    /// [`DEFAULT_MAX_USER_OBJECTS`]); Kafka sources are not counted.
    pub fn max_user_objects(mut self, count: usize) -> Self {
        self.max_user_objects = count;
        self
    }

    /// How many Kafka tables and streams the engine may serve at once (default
    /// [`DEFAULT_MAX_SOURCES`]), counting those of the start-up DDL; declaring one more
    /// fails with SQLSTATE 53400 until one is dropped.
    pub fn max_sources(mut self, count: usize) -> Self {
        self.max_sources = count;
        self
    }

    /// The deepest expression nesting a statement may have (default
    /// [`DEFAULT_MAX_EXPRESSION_DEPTH`](super::DEFAULT_MAX_EXPRESSION_DEPTH)); deeper
    /// statements fail with SQLSTATE 54001 before they are planned.
    pub fn max_expression_depth(mut self, depth: usize) -> Self {
        self.guard.max_expression_depth = depth;
        self
    }

    /// Lets statements read and write the host's files (`COPY ... TO 'path'`, `CREATE
    /// EXTERNAL TABLE ... LOCATION`). Off by default: with it, any user who may run
    /// them acts on the server's disk as the server's OS user.
    pub fn allow_host_access(mut self, allow: bool) -> Self {
        self.guard.allow_host_access = allow;
        self
    }

    /// The memory, in bytes, all queries may hold at once (default 2 GiB). A query
    /// that needs more fails with SQLSTATE 53200; the tables themselves are not
    /// counted.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The memory, in bytes, one query may hold, and the largest value a string
    /// function may build (default 512 MiB).
    pub fn query_memory_limit(mut self, bytes: usize) -> Self {
        self.query_memory_limit = bytes;
        self
    }

    /// The consumer group id prefix sources identify themselves with (default `ktable`;
    /// each source uses `<prefix>-<name>`). Sources never commit offsets.
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = group_id.into();
        self
    }

    /// How long a source waits for topic metadata at creation (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Keeps checkpoints of every table under `dir` (see [`crate::state`]): a table
    /// starts from its last checkpoint and reads only the records written since.
    pub fn state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// How often each table writes a checkpoint when a state folder is set (default
    /// 60 s); tables also write one at [`Engine::checkpoint`].
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// The most bytes one table may hold (default: no limit). A table that grows past
    /// it stops ingesting, with the reason in `ktable_tables.last_error`; its rows stay
    /// queryable and the other tables go on.
    pub fn table_memory_limit(mut self, bytes: usize) -> Self {
        self.table_memory_limit = Some(bytes);
        self
    }

    /// The most bytes all tables together may hold (default: no limit). A table that
    /// grows while the tables hold more stops ingesting, with the reason in
    /// `ktable_tables.last_error`; its rows stay queryable, and tables that do not
    /// grow go on.
    pub fn tables_memory_limit(mut self, bytes: usize) -> Self {
        self.tables_memory_limit = Some(bytes);
        self
    }

    /// Any librdkafka consumer property (security settings, fetch sizes...).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    fn consumer(&self, source: &str) -> ConsumerConfig {
        self.properties.iter().fold(
            ConsumerConfig::new(&self.brokers, format!("{}-{source}", self.group_id))
                .request_timeout(self.request_timeout),
            |config, (k, v)| config.property(k, v),
        )
    }
}

/// Kafka tables and streams as SQL relations.
///
/// The engine owns the sources; a `SessionContext` sees them once registered in it. The
/// engine has a context of its own ([`context`](Self::context)) and can register sources
/// into yours:
///
/// ```no_run
/// # async fn run() -> Result<(), ktable::sql::SqlError> {
/// use datafusion::prelude::SessionContext;
/// use ktable::sql::{Engine, EngineConfig};
///
/// let engine = Engine::new(EngineConfig::new("localhost:9092"));
/// let ctx = SessionContext::new();
/// engine
///     .register(&ctx, "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, age INT) \
///                      WITH (topic = 'users', format = 'json')")
///     .await?;
/// let adults = ctx.sql("SELECT name FROM users WHERE age >= 18").await?.collect().await?;
/// # Ok(()) }
/// ```
pub struct Engine {
    pub(super) config: EngineConfig,
    pub(super) registry: Arc<Registry>,
    context: SessionContext,
    /// What statement shapes were classified as (see `shape`).
    pub(super) shapes: ShapeCache,
    /// PostgreSQL's SQL with the rewrites its clients' catalog queries need.
    pub(super) pg_parser: PostgresCompatibilityParser,
    /// Set while a source waits for Kafka to start (see `source_start`), cleared by
    /// the next start that succeeds.
    kafka_unreachable: Arc<AtomicBool>,
    /// What all tables may hold together (`tables_memory_limit`), if limited.
    tables_budget: Option<Arc<MemoryBudget>>,
}

impl Engine {
    /// An engine with no source yet. Its context has `information_schema` and the
    /// `ktable_tables` system table, holds queries to the configured memory limits,
    /// and reaches no file or remote store unless host access is allowed.
    pub fn new(config: EngineConfig) -> Self {
        let context = SessionContext::new_with_config_rt(
            SessionConfig::new().with_information_schema(true),
            runtime_env(&config),
        );
        bounded_functions::install(&context, config.query_memory_limit);
        let tables_budget = config.tables_memory_limit.map(MemoryBudget::new);
        let engine = Self {
            tables_budget,
            config,
            registry: Arc::new(Registry::default()),
            context,
            shapes: ShapeCache::default(),
            pg_parser: PostgresCompatibilityParser::new(),
            kafka_unreachable: Arc::default(),
        };
        engine.register_system_table(&engine.context);
        engine
    }

    /// The engine's own session context.
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// A context for one client session: the engine's tables, functions and catalogs,
    /// with settings of its own (a `SET` changes this session only) and at most the
    /// query memory limit held at once, taken from the engine's pool.
    pub fn session_context(&self) -> SessionContext {
        let state = self.context.state();
        let shared = state.runtime_env();
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(SessionMemoryPool::new(
                Arc::clone(&shared.memory_pool),
                self.config.query_memory_limit,
            )),
            ..RuntimeEnv::clone(shared)
        });
        SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime)
                .build(),
        )
    }

    /// Holds `sql` to the engine's limits before it runs on `ctx`: the statement guard
    /// (expression depth, host access, settings), and for a statement that creates a
    /// table, view or schema in memory, the limit on how many users may create.
    /// [`prepare`](Self::prepare) does this for every statement it prepares.
    pub fn check(&self, ctx: &SessionContext, sql: &str) -> Result<Checked, SqlError> {
        let checked = self.config.guard.check(sql)?;
        if checked.creates_object {
            self.check_object_limit(ctx)?;
        }
        Ok(checked)
    }

    /// Refuses one more user object in `ctx` when users hold the limit already.
    pub(super) fn check_object_limit(&self, ctx: &SessionContext) -> Result<(), SqlError> {
        if self.user_objects(ctx) >= self.config.max_user_objects {
            return Err(SqlError::Refused(Refusal::TooManyObjects {
                limit: self.config.max_user_objects,
            }));
        }
        Ok(())
    }

    /// Tables, views and schemas in `ctx` that are neither sources nor catalogs of
    /// the engine or of PostgreSQL clients.
    fn user_objects(&self, ctx: &SessionContext) -> usize {
        const SYSTEM_SCHEMAS: &[&str] = &["information_schema", "pg_catalog", "public"];
        let mut count = 0;
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                if !SYSTEM_SCHEMAS.contains(&schema_name.as_str()) {
                    count += 1;
                }
                if schema_name == "information_schema" || schema_name == "pg_catalog" {
                    continue;
                }
                count += schema
                    .table_names()
                    .iter()
                    .filter(|name| {
                        name.as_str() != SYSTEM_TABLE
                            && name.as_str() != super::SUBSCRIPTIONS_TABLE
                            && self.registry.get(name).is_none()
                    })
                    .count();
            }
        }
        count
    }

    /// Runs one statement on the engine's context: source DDL is handled here, anything
    /// else goes to DataFusion.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, SqlError> {
        self.sql_on(&self.context, sql).await
    }

    /// Runs one statement on `ctx`, as [`sql`](Self::sql) does on the engine's context:
    /// prepared by the engine's front end (see [`prepare`](Self::prepare)), so held to
    /// the engine's limits first.
    pub async fn sql_on(&self, ctx: &SessionContext, sql: &str) -> Result<DataFrame, SqlError> {
        let prepared = self.prepare(ctx, sql).await?;
        match prepared.kind() {
            StatementKind::Query | StatementKind::PointLookup => {
                let plan = prepared.plan().cloned().ok_or_else(|| {
                    SqlError::DataFusion(datafusion::error::DataFusionError::Internal(
                        "a query without a plan".into(),
                    ))
                })?;
                let is_ddl = matches!(plan, datafusion::logical_expr::LogicalPlan::Ddl(_));
                let frame = ctx.execute_logical_plan(plan).await?;
                if is_ddl {
                    self.shapes.clear();
                }
                Ok(frame)
            }
            // DataFusion's own handling of SET, SHOW and transactions.
            StatementKind::Session => Ok(ctx.sql(sql).await?),
            // Unbounded: a DataFrame would never end.
            StatementKind::Subscribe => Err(SqlError::Subscribe(
                super::subscribe::SubscribeError::Unsupported(
                    "a subscription runs with Engine::subscribe, not as a DataFrame".into(),
                ),
            )),
            StatementKind::SourceDdl | StatementKind::Savepoint | StatementKind::Empty => {
                self.execute(
                    ctx,
                    &prepared,
                    datafusion::common::ParamValues::List(vec![]),
                )
                .await?;
                Ok(empty(ctx)?)
            }
        }
    }

    /// Runs source DDL on `ctx`.
    pub(super) async fn run_ddl(&self, ctx: &SessionContext, ddl: Ddl) -> Result<(), SqlError> {
        // Any cached shape may name what changes now.
        self.shapes.clear();
        let result = match ddl {
            Ddl::Create(def) => self.create(ctx, def).await,
            Ddl::Drop {
                kind,
                names,
                if_exists,
            } => {
                for name in names {
                    self.drop(ctx, kind, &name, if_exists).await?;
                }
                Ok(())
            }
        };
        // And what a statement prepared meanwhile learned about the old relations.
        self.shapes.clear();
        result
    }

    /// Declares a source and registers it in `ctx` (and the `ktable_tables` system
    /// table, if `ctx` lacks it). Only source DDL is accepted.
    pub async fn register(&self, ctx: &SessionContext, ddl: &str) -> Result<(), SqlError> {
        match ddl::parse(ddl)? {
            Some(Ddl::Create(def)) => {
                self.register_system_table(ctx);
                self.create(ctx, def).await
            }
            _ => Err(SqlError::Ddl(ddl::DdlError::Invalid(
                "expected CREATE TABLE ... WITH (topic = ...) or CREATE STREAM".into(),
            ))),
        }
    }

    /// Runs every statement of `text` on `ctx`, in order. The first failure stops the
    /// script and names `origin` and the statement's line.
    pub async fn run_script(
        &self,
        ctx: &SessionContext,
        text: &str,
        origin: &str,
    ) -> Result<(), SqlError> {
        self.register_system_table(ctx);
        let statements = script::split(text).map_err(|(line, message)| SqlError::Script {
            origin: origin.to_string(),
            line,
            error: Box::new(SqlError::Ddl(ddl::DdlError::Syntax(message))),
        })?;
        for statement in statements {
            let frame =
                self.sql_on(ctx, &statement.sql)
                    .await
                    .map_err(|error| SqlError::Script {
                        origin: origin.to_string(),
                        line: statement.line,
                        error: Box::new(error),
                    })?;
            // Run queries too (a script may check something); DDL results are empty.
            frame.collect().await.map_err(|error| SqlError::Script {
                origin: origin.to_string(),
                line: statement.line,
                error: Box::new(error.into()),
            })?;
        }
        Ok(())
    }

    /// Runs a SQL file, or every `*.sql` file of a folder in name order, on `ctx`.
    pub async fn run_path(&self, ctx: &SessionContext, path: &Path) -> Result<(), SqlError> {
        let io = |error| SqlError::Io {
            path: path.display().to_string(),
            error,
        };
        let files = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "sql"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|error| SqlError::Io {
                path: file.display().to_string(),
                error,
            })?;
            tracing::info!(file = %file.display(), "running SQL file");
            self.run_script(ctx, &text, &file.display().to_string())
                .await?;
        }
        Ok(())
    }

    /// Every source, with its progress and counters.
    pub fn sources(&self) -> Vec<SourceInfo> {
        self.registry.infos()
    }

    /// The store of the table named `name`, if the engine runs one (not a stream).
    pub fn table(&self, name: &str) -> Option<Arc<ColumnarTable>> {
        match &self.registry.get(name)?.handle {
            SourceHandle::Table { table, .. } => Some(Arc::clone(table)),
            SourceHandle::Stream { .. } => None,
        }
    }

    /// Waits until every source has restored (see [`Source::wait_until_ready`]).
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), SqlError> {
        for source in self.registry.all() {
            source.handle.wait_until_ready(timeout).await?;
        }
        Ok(())
    }

    /// Stops every source's consumer; the data stays queryable. Subscriptions end
    /// once they have read the changes applied so far (their streams finish), so a
    /// server shutting down does not wait on them.
    pub fn stop(&self) {
        for source in self.registry.all() {
            source.stop();
            source.handle.close_changes();
        }
    }

    /// Writes a checkpoint of every table that changed since its last one (with a
    /// state folder; else nothing). `ktable serve` calls it at shutdown, after
    /// [`stop`](Self::stop).
    pub async fn checkpoint(&self) -> Result<usize, crate::state::CheckpointError> {
        let mut written = 0;
        for source in self.registry.all() {
            if let SourceHandle::Table { checkpointing, .. } = &source.handle {
                if let Some(c) = checkpointing.get() {
                    written += usize::from(c.checkpoints().write().await?);
                }
            }
        }
        Ok(written)
    }

    fn register_system_table(&self, ctx: &SessionContext) {
        if !ctx.table_exist(SYSTEM_TABLE).unwrap_or(false) {
            // Registration only fails for a name taken, which was just checked.
            let _ = ctx.register_table(
                SYSTEM_TABLE,
                Arc::new(SystemTable::new(Arc::clone(&self.registry))),
            );
        }
        super::subscriptions_table::register(ctx, &self.registry);
    }

    async fn create(&self, ctx: &SessionContext, mut def: SourceDef) -> Result<(), SqlError> {
        def.schema = crate::format::prepare(
            Arc::clone(&def.schema),
            &def.topic,
            self.config.schema_registry.as_deref(),
        )
        .await
        .map_err(|e| ddl::DdlError::Invalid(format!("{} {}: {e}", def.kind, def.name)))?;
        if let Some(existing) = self.registry.get(&def.name) {
            if def.if_not_exists {
                return Ok(());
            }
            // The same source declared in another context of this engine: share it.
            let same = existing.def.kind == def.kind
                && existing.def.topic == def.topic
                && existing.def.schema.arrow() == def.schema.arrow();
            if same && !ctx.table_exist(def.name.as_str())? {
                ctx.register_table(def.name.as_str(), existing.handle.provider())?;
                return Ok(());
            }
            return Err(SqlError::AlreadyExists(def.name));
        }
        if ctx.table_exist(def.name.as_str())? {
            return Err(SqlError::AlreadyExists(def.name));
        }
        // Checked again, under the registry's lock, when the source is added.
        if self.registry.len() >= self.config.max_sources {
            return Err(self.too_many_sources());
        }
        let consumer = self.config.consumer(&def.name);
        let handle = match def.kind {
            SourceKind::Table => {
                def.schema.key_index().ok_or_else(|| {
                    ddl::DdlError::Invalid(format!("table {} has no key column", def.name))
                })?;
                let table = Arc::new(ColumnarTable::with_key_columns(
                    Arc::clone(def.schema.arrow()),
                    def.schema.key_indices(),
                ));
                let sink = ColumnarSink::new(Arc::clone(&def.schema), Arc::clone(&table))
                    .memory_limit(def.memory_limit.or(self.config.table_memory_limit))
                    .memory_budget(self.tables_budget.clone());
                SourceHandle::Table {
                    source: Source::new(consumer, def.topic.as_str(), sink)?,
                    table,
                    checkpointing: Default::default(),
                }
            }
            SourceKind::Stream => {
                let store = Arc::new(StreamStore::new(
                    Arc::clone(def.schema.arrow()),
                    def.retention,
                ));
                let sink = StreamSink::new(Arc::clone(&def.schema), Arc::clone(&store));
                SourceHandle::Stream {
                    source: Source::new(consumer, def.topic.as_str(), sink)?,
                    store,
                }
            }
        };
        let registered = Arc::new(RegisteredSource::new(def, handle));
        let starting = self.start_settings();
        // While another source waits for Kafka, this one would only wait the request
        // timeout to fail the same way: it joins the wait at once.
        let started = if self.kafka_unreachable.load(Ordering::Acquire) {
            Err(SourceError::KafkaUnreachable)
        } else {
            starting.start(&registered).await
        };
        let waiting = match started {
            Ok(()) => None,
            Err(error) if error.is_unreachable() => {
                self.kafka_unreachable.store(true, Ordering::Release);
                Some(error)
            }
            Err(error) => return Err(error.into()),
        };
        let def = &registered.def;
        tracing::info!(name = %def.name, kind = %def.kind, topic = %def.topic, "source created");
        ctx.register_table(def.name.as_str(), registered.handle.provider())?;
        let inserted = self
            .registry
            .insert(Arc::clone(&registered), self.config.max_sources);
        if inserted != Inserted::Added {
            // Another statement declared the same name, or the last free place, meanwhile.
            registered.stop();
            ctx.deregister_table(def.name.as_str())?;
            return Err(match inserted {
                Inserted::Full => self.too_many_sources(),
                _ => SqlError::AlreadyExists(def.name.clone()),
            });
        }
        if let Some(error) = waiting {
            starting.retry(&registered, &self.registry, &error, &self.kafka_unreachable);
        }
        Ok(())
    }

    fn too_many_sources(&self) -> SqlError {
        SqlError::Refused(Refusal::TooManySources {
            limit: self.config.max_sources,
        })
    }

    fn start_settings(&self) -> StartSettings {
        StartSettings {
            state_dir: self.config.state_dir.clone(),
            checkpoint_interval: self.config.checkpoint_interval,
        }
    }

    async fn drop(
        &self,
        ctx: &SessionContext,
        kind: SourceKind,
        name: &str,
        if_exists: bool,
    ) -> Result<(), SqlError> {
        match self.registry.get(name) {
            Some(source) if source.def.kind == kind => {
                self.registry.remove(name);
                source.stop();
                ctx.deregister_table(name)?;
                tracing::info!(name, %kind, "source dropped");
                Ok(())
            }
            Some(source) => Err(SqlError::Ddl(ddl::DdlError::Invalid(format!(
                "\"{name}\" is a {}: use DROP {}",
                source.def.kind,
                source.def.kind.to_string().to_uppercase()
            )))),
            // Not a source: DataFusion drops its own tables (and checks IF EXISTS).
            None if kind == SourceKind::Table && ctx.table_exist(name)? => {
                ctx.sql(&format!("DROP TABLE \"{}\"", name.replace('"', "\"\"")))
                    .await?;
                Ok(())
            }
            None if if_exists => Ok(()),
            None => Err(SqlError::NotFound {
                kind,
                name: name.to_string(),
            }),
        }
    }
}

/// The engine's runtime: a memory pool of the configured size, and an object store
/// registry that reaches nothing unless host access is allowed.
fn runtime_env(config: &EngineConfig) -> Arc<RuntimeEnv> {
    let mut builder = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(config.memory_limit)));
    if !config.guard.allow_host_access {
        builder = builder.with_object_store_registry(Arc::new(NoHostAccess));
    }
    // With the default spill location (the OS temp directory, created on first
    // spill) building does no I/O and has nothing to fail on.
    builder
        .build_arc()
        .expect("a runtime with default spill and cache settings builds")
}

fn empty(ctx: &SessionContext) -> datafusion::error::Result<DataFrame> {
    ctx.read_batch(RecordBatch::new_empty(Arc::new(Schema::empty())))
}
