//! The simple-query protocol: a text of one or more statements, each prepared by the
//! engine's front end and answered in turn.
//!
//! A literal lookup whose shape the engine knows (`SELECT ... WHERE id = 'u42'`, as
//! psql and BI tools send them) is read from the key index right here, on the
//! connection's task: no parse, no plan, no hop to the query threads.

use super::errors::user_error;
use super::handlers::Shared;
use super::results;
use super::session::Session;
use super::session_statements;
use super::subscribe;
use crate::sql::{split_script, DdlError, SqlError, StatementKind};
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::query::SimpleQueryHandler;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use std::borrow::Cow;
use std::sync::Arc;
use tokio::time::Instant;

/// The simple-query handler.
pub struct KtableQueries {
    shared: Arc<Shared>,
}

impl KtableQueries {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
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
        // One statement, the common case, is not split (the front end sees a
        // trailing semicolon or an empty text for what it is).
        let statements: Vec<Cow<'_, str>> = if query.trim_end().trim_end_matches(';').contains(';')
        {
            split_script(query)
                .map_err(|(_, message)| user_error(&SqlError::Ddl(DdlError::Syntax(message))))?
                .into_iter()
                .map(|statement| Cow::Owned(statement.sql))
                .collect()
        } else {
            vec![Cow::Borrowed(query)]
        };
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        let alone = statements.len() == 1;
        for sql in &statements {
            responses.push(self.statement(client, sql, alone).await?);
        }
        Ok(responses)
    }
}

impl KtableQueries {
    async fn statement<C>(&self, client: &mut C, sql: &str, alone: bool) -> PgWireResult<Response>
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
        let shared = &self.shared;
        let started = Instant::now();
        let session = Session::of(&*client, &shared.engine);
        if let Some((lookup, Some(key))) = shared.engine.prepare_cached(sql) {
            let rows = shared.engine.lookup(&lookup, Some(&key));
            shared
                .metrics
                .fast_path_lookup(rows.is_ok(), started.elapsed());
            let rows = rows.map_err(|e| user_error(&e))?;
            let fields = session.lookup_fields(&*client, &lookup, |options| {
                results::fields(&rows.schema(), &Format::UnifiedText, options)
            })?;
            return Ok(Response::Query(results::batch_rows(fields, rows)));
        }
        if let Some(cursor) = subscribe::cursor_prepared(&*client, sql) {
            let format = Format::UnifiedText;
            return subscribe::run(client, shared, &session, &cursor, &format, true, 0).await;
        }
        let prepared = shared
            .limits
            .within(started, shared.prepare(&session, sql))
            .await?;
        shared.access.check(&*client, &prepared)?;
        if prepared.kind() == StatementKind::Subscribe {
            if !alone && subscribe::streams(&prepared) {
                return Err(super::errors::error_with_code(
                    "0A000", // feature_not_supported
                    "SUBSCRIBE and COPY (SUBSCRIBE ...) must be sent alone, not with \
                     other statements"
                        .into(),
                ));
            }
            let format = Format::UnifiedText;
            return subscribe::run(client, shared, &session, &prepared, &format, true, 0).await;
        }
        if prepared.kind() == StatementKind::Session {
            let statement = prepared
                .statement()
                .ok_or_else(|| user_error(&SqlError::SessionOnly(prepared.sql().to_string())))?;
            let response = shared
                .limits
                .within(
                    started,
                    session_statements::simple(client, &session, statement),
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
                prepared,
                ParamValues::List(vec![]),
                Format::UnifiedText,
            )
            .await
    }
}
