//! pgwire handlers: datafusion-postgres's, with ktable's DDL and errors in front.

use super::auth::{Access, Authenticator, UserConfig};
use super::cancel::{KtableCancel, RunningQueries};
use super::client_view::DfClient;
use super::detached_client::{self, DetachedClient};
use super::errors::{user_error, with_sqlstate};
use super::extended::{BufferedReplies, KtableExtended};
use super::limits::QueryLimits;
use super::query_runtime::QueryRuntime;
use super::session::Session;
use crate::sql::{parse_ddl, split_script, Ddl, DdlError, Engine, SqlError};
use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use std::sync::Arc;
use tokio::time::Instant;

/// The command tag of `sql` if it is source DDL (`CREATE TABLE`, `DROP STREAM`...).
pub(crate) fn ddl_tag(sql: &str) -> PgWireResult<Option<String>> {
    let ddl = parse_ddl(sql).map_err(|e| user_error(&SqlError::Ddl(e)))?;
    Ok(ddl.map(|ddl| match ddl {
        Ddl::Create(def) => format!("CREATE {}", def.kind.to_string().to_uppercase()),
        Ddl::Drop { kind, .. } => format!("DROP {}", kind.to_string().to_uppercase()),
    }))
}

/// Runs source DDL itself and hands every other statement to datafusion-postgres.
pub struct KtableQueries {
    engine: Arc<Engine>,
    access: Arc<Access>,
    limits: QueryLimits,
    running: Arc<RunningQueries>,
    runtime: Arc<QueryRuntime>,
}

#[async_trait]
impl SimpleQueryHandler for KtableQueries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = split_script(query)
            .map_err(|(_, message)| user_error(&SqlError::Ddl(DdlError::Syntax(message))))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let started = Instant::now();
            if let Some(tag) = savepoint_tag(&statement.sql) {
                responses.push(Response::Execution(Tag::new(tag)));
                continue;
            }
            let session = Session::of(&*client, &self.engine);
            let checked = self
                .engine
                .check(session.context(), &statement.sql)
                .map_err(|e| user_error(&e))?;
            if let Some(tag) = ddl_tag(&statement.sql)? {
                self.access.check_ddl(client)?;
                self.engine
                    .sql(&statement.sql)
                    .await
                    .map_err(|e| user_error(&e))?;
                responses.push(Response::Execution(Tag::new(&tag)));
                continue;
            }
            self.access.check_sql(client, &statement.sql)?;
            let cancel = self.running.start(&*client);
            let results = if checked.session_statements {
                // SET, SHOW, transactions, cursors: answered on the connection.
                let mut client = DfClient::new(&mut *client);
                self.limits
                    .within(
                        started,
                        SimpleQueryHandler::do_query(
                            &**session.service(),
                            &mut client,
                            &statement.sql,
                        ),
                    )
                    .await
            } else {
                let work = detached_client::simple_query(
                    Arc::clone(session.service()),
                    DetachedClient::of(&*client),
                    statement.sql,
                );
                self.limits
                    .within(started, self.runtime.respond(work))
                    .await
                    .map(|response| vec![response])
            }
            .map_err(with_sqlstate)?;
            responses.extend(
                results
                    .into_iter()
                    .map(|response| self.limits.hold(started, Arc::clone(&cancel), response)),
            );
        }
        Ok(responses)
    }
}

/// Savepoint statements succeed as no-ops: nothing a client can run here writes, so
/// there is nothing to roll back (drivers such as psycopg with SQLAlchemy send them).
pub(crate) fn savepoint_tag(sql: &str) -> Option<&'static str> {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["SAVEPOINT", ..] => Some("SAVEPOINT"),
        ["RELEASE", ..] => Some("RELEASE"),
        ["ROLLBACK", "TO"] => Some("ROLLBACK"),
        _ => None,
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
}

impl KtableHandlers {
    /// Handlers serving `engine` to `users` (no authentication when empty), every
    /// query held to `limits` and run on `runtime`.
    pub(crate) fn new(
        engine: Arc<Engine>,
        users: &[UserConfig],
        limits: QueryLimits,
        runtime: Arc<QueryRuntime>,
    ) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        let access = Arc::new(Access::new(users));
        let running = Arc::new(RunningQueries::default());
        Self {
            queries: Arc::new(KtableQueries {
                engine: Arc::clone(&engine),
                access: Arc::clone(&access),
                limits,
                running: Arc::clone(&running),
                runtime: Arc::clone(&runtime),
            }),
            extended: Arc::new(BufferedReplies(KtableExtended::new(
                engine,
                access,
                limits,
                Arc::clone(&running),
                runtime,
            ))),
            cancel: Arc::new(KtableCancel {
                planning: DefaultCancelHandler::new(Arc::clone(&connections)),
                running,
            }),
            authenticator: Authenticator::new(users, connections),
        }
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
