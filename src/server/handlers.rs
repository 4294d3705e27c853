//! The server's pgwire handlers and what they share: the engine, who may do what,
//! the limits, running statements (for cancel) and the query threads.

use super::auth::{Access, Authenticator, UserConfig};
use super::cancel::{KtableCancel, RunningQueries};
use super::errors::{error_with_code, user_error};
use super::extended::{BufferedReplies, KtableExtended};
use super::limits::QueryLimits;
use super::metrics::{ServerMetrics, StatementLabel};
use super::query_runtime::QueryRuntime;
use super::results;
use super::session::Session;
use super::simple::KtableQueries;
use crate::sql::{Engine, Prepared};
use datafusion::common::ParamValues;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::time::Instant;

/// What both protocols' handlers work with.
pub(crate) struct Shared {
    pub(crate) engine: Arc<Engine>,
    pub(crate) access: Access,
    pub(crate) limits: QueryLimits,
    pub(crate) running: Arc<RunningQueries>,
    pub(crate) runtime: Arc<QueryRuntime>,
    pub(crate) metrics: Arc<ServerMetrics>,
    /// The runtime `serve` was called on: source DDL runs there, so that the
    /// consumers and tasks it starts outlive the connection threads.
    pub(crate) home: Handle,
}

impl Shared {
    /// Prepares `sql` for `session` on the query threads (planning recurses with the
    /// statement's depth, and may take a while).
    pub(crate) async fn prepare(
        &self,
        session: &Session,
        sql: &str,
    ) -> PgWireResult<Arc<Prepared>> {
        let started = Instant::now();
        let engine = Arc::clone(&self.engine);
        let context = Arc::clone(session.context());
        let sql = sql.to_string();
        let prepared = self
            .runtime
            .run(async move {
                engine
                    .prepare(&context, &sql)
                    .await
                    .map_err(|e| user_error(&e))
            })
            .await;
        if prepared.is_err() {
            self.metrics
                .statement(StatementLabel::Invalid, false, started.elapsed());
        }
        prepared
    }

    /// Runs `prepared` with `params` for `client`, within the query limits from
    /// `started` and ended by a cancel request, its rows in `format`.
    pub(crate) async fn execute<C: ClientInfo>(
        &self,
        client: &C,
        session: &Session,
        started: Instant,
        prepared: Arc<Prepared>,
        params: ParamValues,
        format: Format,
    ) -> PgWireResult<Response> {
        let cancel = self.running.start(client);
        let options = session.format(client);
        let kind = prepared.kind();
        let response = self
            .limits
            .within(
                started,
                self.run(session, prepared, params, format, options),
            )
            .await;
        // Until the result is ready to stream: rows are produced as the client reads.
        self.metrics
            .statement(kind.into(), response.is_ok(), started.elapsed());
        Ok(self.limits.hold(started, cancel, response?))
    }

    /// Source DDL on the runtime `serve` was called on (sources start their consumers
    /// there), no-ops on the connection's own task, everything else on the query
    /// threads, its rows produced there as the client reads them.
    async fn run(
        &self,
        session: &Session,
        prepared: Arc<Prepared>,
        params: ParamValues,
        format: Format,
        options: Arc<FormatOptions>,
    ) -> PgWireResult<Response> {
        use crate::sql::StatementKind::*;
        let engine = Arc::clone(&self.engine);
        let context = Arc::clone(session.context());
        match prepared.kind() {
            SourceDdl => {
                let output = self
                    .home
                    .spawn(async move { engine.execute(&context, &prepared, params).await })
                    .await
                    .map_err(|error| {
                        tracing::error!(%error, "a source statement failed");
                        error_with_code("XX000", "the statement stopped unexpectedly".into())
                    })?
                    .map_err(|e| user_error(&e))?;
                results::respond(output, &format, &options)
            }
            Savepoint | Empty => {
                let output = engine
                    .execute(&context, &prepared, params)
                    .await
                    .map_err(|e| user_error(&e))?;
                results::respond(output, &format, &options)
            }
            Session | PointLookup | Query | Subscribe => {
                self.runtime
                    .respond(async move {
                        let output = engine
                            .execute(&context, &prepared, params)
                            .await
                            .map_err(|e| user_error(&e))?;
                        results::respond(output, &format, &options)
                    })
                    .await
            }
        }
    }
}

/// Logs errors sent to clients at debug level (a bad query is the client's business).
pub struct KtableErrors;

impl ErrorHandler for KtableErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(%error, "error sent to client");
    }
}

/// The handlers of one server.
pub struct KtableHandlers {
    queries: Arc<KtableQueries>,
    extended: Arc<BufferedReplies>,
    authenticator: Authenticator,
    cancel: Arc<KtableCancel>,
    metrics: Arc<ServerMetrics>,
}

impl KtableHandlers {
    /// Handlers serving `engine` to `users` (no authentication when empty), every
    /// query held to `limits` and run on `runtime`.
    pub(crate) fn new(
        engine: Arc<Engine>,
        users: &[UserConfig],
        limits: QueryLimits,
        runtime: Arc<QueryRuntime>,
        metrics: Arc<ServerMetrics>,
    ) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        let running = Arc::new(RunningQueries::default());
        let shared = Arc::new(Shared {
            engine,
            access: Access::new(users),
            limits,
            running: Arc::clone(&running),
            runtime,
            metrics: Arc::clone(&metrics),
            home: Handle::current(),
        });
        Self {
            queries: Arc::new(KtableQueries::new(Arc::clone(&shared))),
            extended: Arc::new(BufferedReplies(KtableExtended::new(shared))),
            cancel: Arc::new(KtableCancel {
                planning: DefaultCancelHandler::new(Arc::clone(&connections)),
                running,
            }),
            authenticator: Authenticator::new(users, connections),
            metrics,
        }
    }

    /// The server's counters.
    pub(crate) fn metrics(&self) -> &Arc<ServerMetrics> {
        &self.metrics
    }
}

impl PgWireServerHandlers for KtableHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.extended)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(self.authenticator.startup())
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(KtableErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}
