//! The extended query protocol (Parse/Bind/Describe/Execute) over the engine's front
//! end.
//!
//! At `Parse` the engine prepares the statement once (on the query threads; a text it
//! has prepared before, as drivers that parse anew on every execution send, comes
//! from its shape cache without parsing) and the wire's view of it is worked out
//! ([`WireStatement`]). At `Execute`:
//! * a point lookup with a text key reads the key index right here, on the
//!   connection's task, and encodes the row with the statement's field descriptions;
//! * a session statement (`SET`, cursors...) is answered on the connection;
//! * source DDL runs on the connection (its source starts there);
//! * anything else runs on the query threads with its parameters bound.

use super::client_view::BufferedClient;
use super::errors::{error_with_code, user_error};
use super::handlers::Shared;
use super::results;
use super::session::Session;
use super::session_statements;
use super::subscribe;
use super::wire_statement::WireStatement;
use crate::sql::StatementKind;
use async_trait::async_trait;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::ExtendedQueryHandler;
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, Type, DEFAULT_NAME};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::extendedquery::{Bind, Close, Describe, Execute, Parse};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::Sink;
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

/// Parses for [`KtableExtended`] with the engine's front end.
pub struct KtableParser {
    shared: Arc<Shared>,
}

/// Format options for descriptions made before a client's own are known (a
/// description does not depend on them).
fn describe_options() -> &'static Arc<FormatOptions> {
    static OPTIONS: OnceLock<Arc<FormatOptions>> = OnceLock::new();
    OPTIONS.get_or_init(|| Arc::new(FormatOptions::default()))
}

#[async_trait]
impl QueryParser for KtableParser {
    type Statement = Arc<WireStatement>;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let shared = &self.shared;
        let session = Session::of(client, &shared.engine);
        if let Some(cursor) = subscribe::cursor_prepared(client, sql) {
            return Ok(Some(Arc::new(WireStatement::new(
                Arc::new(cursor),
                None,
                types,
            )?)));
        }
        let prepared = match shared.engine.prepare_cached(sql) {
            Some((prepared, None)) => prepared,
            _ => shared.prepare(&session, sql).await?,
        };
        let session_plan = match (prepared.kind(), prepared.statement()) {
            (StatementKind::Session, Some(statement)) => {
                session_statements::plan(client, &session, statement).await?
            }
            _ => None,
        };
        Ok(Some(Arc::new(WireStatement::new(
            prepared,
            session_plan,
            types,
        )?)))
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(statement.parameter_types.clone())
    }

    fn get_result_schema(
        &self,
        statement: &Self::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        if let Some(plan) = &statement.session_plan {
            return Ok(
                results::fields(plan.schema().as_arrow(), format, describe_options())?.to_vec(),
            );
        }
        Ok(statement.fields(format, describe_options())?.to_vec())
    }
}

/// The extended-protocol handler.
pub struct KtableExtended {
    shared: Arc<Shared>,
    parser: Arc<KtableParser>,
}

impl KtableExtended {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            parser: Arc::new(KtableParser {
                shared: Arc::clone(&shared),
            }),
            shared,
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for KtableExtended {
    type Statement = Arc<WireStatement>;
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
        let shared = &self.shared;
        let statement = &portal.statement.statement;
        let prepared = &statement.prepared;
        let session = Session::of(&*client, &shared.engine);
        shared.access.check(&*client, prepared)?;
        if prepared.kind() == StatementKind::Subscribe {
            let format = &portal.result_column_format;
            return subscribe::run(client, shared, &session, prepared, format, false, max_rows)
                .await;
        }
        let started = Instant::now();
        if statement.text_key {
            let key = match portal.parameters.first() {
                Some(Some(bytes)) => Some(std::str::from_utf8(bytes).map_err(|_| {
                    error_with_code(
                        "22021", // character_not_in_repertoire
                        "the key parameter is not valid UTF-8".into(),
                    )
                })?),
                _ => None,
            };
            let rows = shared.engine.lookup(prepared, key);
            shared
                .metrics
                .fast_path_lookup(rows.is_ok(), started.elapsed());
            let rows = rows.map_err(|e| user_error(&e))?;
            let fields =
                statement.fields(&portal.result_column_format, &session.format(&*client))?;
            return Ok(Response::Query(results::batch_rows(fields, rows)));
        }
        let inferred: Vec<_> = statement
            .inferred_types
            .iter()
            .map(Option::as_ref)
            .collect();
        let announced: Vec<_> = statement.parameter_types.iter().map(Some).collect();
        let params = deserialize_parameters_with_server_types(portal, &inferred, &announced)?;
        if prepared.kind() == StatementKind::Session {
            let Some(sql_statement) = prepared.statement() else {
                return Ok(Response::EmptyQuery);
            };
            let response = shared
                .limits
                .within(
                    started,
                    session_statements::extended(
                        client,
                        &session,
                        sql_statement,
                        statement.session_plan.as_ref(),
                        &params,
                    ),
                )
                .await;
            let kind = StatementKind::Session.into();
            shared
                .metrics
                .statement(kind, response.is_ok(), started.elapsed());
            return response;
        }
        shared
            .execute(
                &*client,
                &session,
                started,
                Arc::clone(prepared),
                params,
                portal.result_column_format.clone(),
            )
            .await
    }
}

/// [`KtableExtended`] with its replies held until the client's Sync or Flush (see
/// [`BufferedClient`]); Sync and Flush themselves reach the connection unchanged.
pub struct BufferedReplies(pub(crate) KtableExtended);

#[async_trait]
impl ExtendedQueryHandler for BufferedReplies {
    type Statement = Arc<WireStatement>;
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
        // A subscription's rows go out as they are written.
        let portal = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let streams = client
            .portal_store()
            .get_portal(portal)
            .is_some_and(|entry| {
                entry
                    .value()
                    .is_some_and(|p| subscribe::streams(&p.statement.statement.prepared))
            });
        if streams {
            return self.0.on_execute(client, message).await;
        }
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
