//! The extended query protocol (Parse/Bind/Describe/Execute): ktable's statements in
//! front of datafusion-postgres's.
//!
//! At `Parse` a statement is held to the engine's limits (`Engine::check`), then sorted
//! once into what runs it:
//! * a point lookup on a Kafka table → [`PointLookup`], answered from the key index;
//! * ktable's source DDL (`CREATE STREAM`, `CREATE TABLE ... WITH (topic)`, `DROP`) and
//!   savepoints → run by ktable, as on the simple-query path;
//! * anything else → datafusion-postgres, with the plan it built on the query runtime
//!   over the session's context; executed there too, unless it is a session statement
//!   (`SET`, cursors...), which answers on the connection.

use super::auth::Access;
use super::cancel::RunningQueries;
use super::client_view::{BufferedClient, DfClient};
use super::detached_client::{self, DetachedClient};
use super::errors::{user_error, with_sqlstate};
use super::handlers::{ddl_tag, savepoint_tag};
use super::limits::QueryLimits;
use super::lookup::PointLookup;
use super::query_runtime::QueryRuntime;
use super::session::Session;
use crate::sql::{is_session_statement, Engine};
use async_trait::async_trait;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::ExtendedQueryHandler;
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::{QueryParser, StoredStatement};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, Type};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Parse};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::DfSessionService;
use futures::Sink;
use std::sync::Arc;
use tokio::time::Instant;

pub(crate) use super::client_view::DfStatement;

/// A prepared statement, sorted by what runs it.
#[derive(Clone)]
pub enum KtableStatement {
    /// `SELECT cols FROM table WHERE key = $1`, served from the key index.
    Lookup(Arc<PointLookup>),
    /// Source DDL, run by the engine.
    Ddl(Arc<str>),
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`: accepted, nothing to do.
    Savepoint(&'static str),
    /// Everything else: datafusion-postgres's statement and plan.
    DataFusion(Arc<StoredStatement<DfStatement>>),
}

/// Parses for [`KtableExtended`]: ktable's statements first, then DataFusion's.
pub struct KtableParser {
    engine: Arc<Engine>,
    runtime: Arc<QueryRuntime>,
    /// datafusion-postgres's parser over the engine's context, for what it derives
    /// from a statement it parsed: parameter and result types come from the plan
    /// alone, whichever session's parser made it.
    plans: Arc<datafusion_postgres::Parser>,
}

/// Parameter types with which a lookup's key arrives as UTF-8 text, whatever the
/// format: declared as a string type, or left for the server to choose (it says TEXT).
fn is_text_parameter(declared: Option<&Option<Type>>) -> bool {
    match declared {
        None | Some(None) => true,
        Some(Some(t)) => {
            *t == Type::TEXT
                || *t == Type::VARCHAR
                || *t == Type::BPCHAR
                || *t == Type::NAME
                || *t == Type::UNKNOWN
        }
    }
}

#[async_trait]
impl QueryParser for KtableParser {
    type Statement = KtableStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if let Some(tag) = savepoint_tag(sql) {
            return Ok(Some(KtableStatement::Savepoint(tag)));
        }
        let session = Session::of(client, &self.engine);
        self.engine
            .check(session.context(), sql)
            .map_err(|e| user_error(&e))?;
        if ddl_tag(sql)?.is_some() {
            return Ok(Some(KtableStatement::Ddl(sql.into())));
        }
        let parser = session.service().query_parser();
        let detached = DetachedClient::of(client);
        let (owned_sql, owned_types) = (sql.to_string(), types.to_vec());
        let parsed = self
            .runtime
            .run(async move { parser.parse_sql(&detached, &owned_sql, &owned_types).await })
            .await
            .map_err(with_sqlstate)?;
        let Some(statement) = parsed else {
            return Ok(None);
        };
        if types.len() <= 1 && is_text_parameter(types.first()) {
            if let (_, Some((_, plan))) = &statement {
                if let Some(lookup) = PointLookup::recognize(plan) {
                    tracing::debug!(sql, "prepared point lookup served from the key index");
                    return Ok(Some(KtableStatement::Lookup(Arc::new(lookup))));
                }
            }
        }
        Ok(Some(KtableStatement::DataFusion(Arc::new(
            StoredStatement::new(String::new(), statement, types.to_vec()),
        ))))
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        match statement {
            KtableStatement::Lookup(lookup) => Ok(lookup.parameter_types()),
            KtableStatement::Ddl(_) | KtableStatement::Savepoint(_) => Ok(vec![]),
            KtableStatement::DataFusion(inner) => self.plans.get_parameter_types(&inner.statement),
        }
    }

    fn get_result_schema(
        &self,
        statement: &Self::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match statement {
            KtableStatement::Lookup(lookup) => {
                lookup.fields(format.unwrap_or(&Format::UnifiedText), None)
            }
            KtableStatement::Ddl(_) | KtableStatement::Savepoint(_) => Ok(vec![]),
            KtableStatement::DataFusion(inner) => {
                self.plans.get_result_schema(&inner.statement, format)
            }
        }
    }
}

/// The extended-protocol handler.
pub struct KtableExtended {
    engine: Arc<Engine>,
    access: Arc<Access>,
    limits: QueryLimits,
    running: Arc<RunningQueries>,
    parser: Arc<KtableParser>,
    runtime: Arc<QueryRuntime>,
}

impl KtableExtended {
    pub(crate) fn new(
        engine: Arc<Engine>,
        access: Arc<Access>,
        limits: QueryLimits,
        running: Arc<RunningQueries>,
        runtime: Arc<QueryRuntime>,
    ) -> Self {
        Self {
            parser: Arc::new(KtableParser {
                plans: DfSessionService::new(Arc::new(engine.context().clone())).query_parser(),
                engine: Arc::clone(&engine),
                runtime: Arc::clone(&runtime),
            }),
            engine,
            access,
            limits,
            running,
            runtime,
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for KtableExtended {
    type Statement = KtableStatement;
    type QueryParser = KtableParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &portal.statement.statement {
            KtableStatement::Lookup(lookup) => {
                let key = portal.parameters.first().and_then(|p| p.as_deref());
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                let rows = lookup.execute(
                    &self.engine,
                    key,
                    &portal.result_column_format,
                    Some(options),
                )?;
                Ok(Response::Query(rows))
            }
            KtableStatement::Ddl(sql) => {
                self.access.check_ddl(client)?;
                let tag = ddl_tag(sql)?.unwrap_or_default();
                self.engine.sql(sql).await.map_err(|e| user_error(&e))?;
                Ok(Response::Execution(Tag::new(&tag)))
            }
            KtableStatement::Savepoint(tag) => Ok(Response::Execution(Tag::new(tag))),
            KtableStatement::DataFusion(statement) => {
                self.access.check_statement(client, &statement.statement)?;
                // The same portal over datafusion-postgres's statement. Its execution
                // state stays with the outer portal, which pgwire drives.
                let mut inner_portal =
                    Portal::new_cursor(portal.name.clone(), Arc::clone(statement));
                inner_portal.parameter_format = portal.parameter_format.clone();
                inner_portal.parameters = portal.parameters.clone();
                inner_portal.result_column_format = portal.result_column_format.clone();
                let started = Instant::now();
                let cancel = self.running.start(&*client);
                let service = Arc::clone(Session::of(&*client, &self.engine).service());
                let on_connection = matches!(
                    &statement.statement.1,
                    Some((statement, _)) if is_session_statement(statement)
                );
                let response = if on_connection {
                    let mut client = DfClient::new(client);
                    self.limits
                        .within(
                            started,
                            service.do_query(&mut client, &inner_portal, max_rows),
                        )
                        .await
                } else {
                    let work = detached_client::execute_portal(
                        service,
                        DetachedClient::of(&*client),
                        inner_portal,
                        max_rows,
                    );
                    self.limits
                        .within(started, self.runtime.respond(work))
                        .await
                }
                .map_err(with_sqlstate)?;
                Ok(self.limits.hold(started, cancel, response))
            }
        }
    }
}

/// [`KtableExtended`] with its replies held until the client's Sync or Flush (see
/// [`BufferedClient`]); Sync and Flush themselves reach the connection unchanged.
pub struct BufferedReplies(pub(crate) KtableExtended);

#[async_trait]
impl ExtendedQueryHandler for BufferedReplies {
    type Statement = KtableStatement;
    type QueryParser = KtableParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.0.query_parser()
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0
            .on_parse(&mut BufferedClient::new(client), message)
            .await
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0
            .on_bind(&mut BufferedClient::new(client), message)
            .await
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0
            .on_execute(&mut BufferedClient::new(client), message)
            .await
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0
            .on_describe(&mut BufferedClient::new(client), message)
            .await
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0
            .on_close(&mut BufferedClient::new(client), message)
            .await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.0.do_query(client, portal, max_rows).await
    }
}
