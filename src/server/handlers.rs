//! pgwire handlers: datafusion-postgres's, with ktable's DDL and errors in front.

use crate::source::SourceError;
use crate::sql::{parse_ddl, split_script, DdlError, Engine, SqlError};
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::DfSessionService;
use std::sync::Arc;

/// The SQLSTATE a ktable error is reported with.
pub fn sqlstate(error: &SqlError) -> &'static str {
    match error {
        SqlError::Ddl(DdlError::Syntax(_)) => "42601", // syntax_error
        SqlError::Ddl(DdlError::Invalid(_)) => "42P16", // invalid_table_definition
        SqlError::AlreadyExists(_) => "42P07",         // duplicate_table
        SqlError::NotFound { .. } => "42P01",          // undefined_table
        SqlError::Source(SourceError::TopicNotFound(_)) => "42704", // undefined_object
        SqlError::Source(_) => "58000",                // system_error (Kafka)
        SqlError::DataFusion(_) => "XX000",
        SqlError::Script { error, .. } => sqlstate(error),
        SqlError::Io { .. } => "58030", // io_error
    }
}

fn user_error(error: &SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        sqlstate(error).to_string(),
        error.to_string(),
    )))
}

/// Startup without authentication (the server only listens on loopback), registering
/// each connection so cancel requests find it.
pub struct KtableStartup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for KtableStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }
}

/// Runs source DDL itself and hands every other statement to datafusion-postgres.
pub struct KtableQueries {
    engine: Arc<Engine>,
    inner: Arc<DfSessionService>,
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
            if let Some(tag) = savepoint_tag(&statement.sql) {
                responses.push(Response::Execution(Tag::new(tag)));
                continue;
            }
            let ddl = parse_ddl(&statement.sql).map_err(|e| user_error(&SqlError::Ddl(e)))?;
            match ddl {
                Some(ddl) => {
                    let tag = match &ddl {
                        crate::sql::Ddl::Create(def) => {
                            format!("CREATE {}", def.kind.to_string().to_uppercase())
                        }
                        crate::sql::Ddl::Drop { kind, .. } => {
                            format!("DROP {}", kind.to_string().to_uppercase())
                        }
                    };
                    self.engine
                        .sql(&statement.sql)
                        .await
                        .map_err(|e| user_error(&e))?;
                    responses.push(Response::Execution(Tag::new(&tag)));
                }
                None => responses.extend(
                    SimpleQueryHandler::do_query(&*self.inner, client, &statement.sql).await?,
                ),
            }
        }
        Ok(responses)
    }
}

/// Savepoint statements succeed as no-ops: nothing a client can run here writes, so
/// there is nothing to roll back (drivers such as psycopg with SQLAlchemy send them).
fn savepoint_tag(sql: &str) -> Option<&'static str> {
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
    extended: Arc<DfSessionService>,
    startup: Arc<KtableStartup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl KtableHandlers {
    /// Handlers serving `engine`; `context` is the engine's context with pg_catalog.
    pub fn new(engine: Arc<Engine>, context: Arc<SessionContext>) -> Self {
        let inner = Arc::new(DfSessionService::new(context));
        let connections = Arc::new(ConnectionManager::new());
        Self {
            queries: Arc::new(KtableQueries {
                engine,
                inner: Arc::clone(&inner),
            }),
            extended: inner,
            cancel: Arc::new(DefaultCancelHandler::new(Arc::clone(&connections))),
            startup: Arc::new(KtableStartup { connections }),
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
        Arc::clone(&self.startup)
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(KtableErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}
