//! Statements about the session itself (`SET`, `SHOW`, transactions, cursors,
//! `DISCARD`), answered on the connection.
//!
//! They read or change the connection's state (its settings, its transaction status,
//! its cursors), so they run on the connection's task, not on the query threads.
//! datafusion-postgres's hooks answer them as PostgreSQL does (ParameterStatus after
//! a `SET`, cursors kept per connection); this file only hands them the statement the
//! engine already parsed. `DISCARD` is answered here: it resets nothing ktable keeps
//! beyond the settings and cursors drivers reset themselves after it.

use super::client_view::DfClient;
use super::session::Session;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use futures::Sink;

/// The hooks, in the order they are asked.
fn hooks() -> [&'static dyn QueryHook; 3] {
    [
        &SetShowHook,
        &TransactionStatementHook,
        &CursorStatementHook,
    ]
}

/// A statement datafusion-postgres 0.19's `SetShowHook` would panic on: it indexes
/// the first name of a `SHOW` and the first value of a `SET` without looking, and
/// sqlparser accepts `SHOW :` (no name). Refused first, as PostgreSQL refuses them.
fn malformed(statement: &Statement) -> Option<PgWireError> {
    use datafusion::sql::sqlparser::ast::Set;
    let empty = match statement {
        Statement::ShowVariable { variable } => variable.is_empty(),
        Statement::Set(Set::SingleAssignment { values, .. }) => values.is_empty(),
        _ => false,
    };
    empty.then(|| {
        super::errors::error_with_code(
            "42601", // syntax_error
            format!("a setting's name or value is missing: {statement}"),
        )
    })
}

fn unsupported(statement: &Statement) -> PgWireError {
    super::errors::error_with_code(
        "0A000", // feature_not_supported
        format!("unsupported statement: {statement}"),
    )
}

/// `DISCARD ALL | PLANS | SEQUENCES | TEMP`: nothing of these is kept beyond what a
/// driver resets itself (Npgsql sends it when a pooled connection is returned);
/// `RESET`: accepted for the PostgreSQL parameters a session may set;
/// `DEALLOCATE`: SQL-level prepared statements are not kept (protocol-level ones are
/// closed with the Close message).
fn discard(statement: &Statement) -> Option<Response> {
    let tag = match statement {
        Statement::Discard { object_type } => {
            format!("DISCARD {}", object_type.to_string().to_uppercase())
        }
        Statement::Deallocate { .. } => "DEALLOCATE".to_string(),
        // The settings a session may reset (the guard refused the others) only shape
        // how values are written; a reset takes effect with the next SET.
        Statement::Reset(_) => "RESET".to_string(),
        _ => return None,
    };
    Some(Response::Execution(Tag::new(&tag)))
}

/// Closes the session's subscription cursors that `statement` ends: a transaction's
/// end closes those not declared `WITH HOLD`, `CLOSE ALL` and `DISCARD ALL` close all.
fn close_subscriptions<C: ClientInfo + ?Sized>(client: &C, statement: &Statement) {
    use datafusion::sql::sqlparser::ast::{CloseCursor, DiscardObject};
    let all = match statement {
        Statement::Commit { .. } | Statement::Rollback { .. } => false,
        Statement::Close {
            cursor: CloseCursor::All,
        }
        | Statement::Discard {
            object_type: DiscardObject::ALL,
        } => true,
        _ => return,
    };
    super::subscribe::SubscriptionCursors::of(client).end_of_transaction(all);
}

/// Answers a session statement sent with the simple protocol.
pub(crate) async fn simple<C>(
    client: &mut C,
    session: &Session,
    statement: &Statement,
) -> PgWireResult<Response>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some(error) = malformed(statement) {
        return Err(error);
    }
    close_subscriptions(&*client, statement);
    if let Some(response) = discard(statement) {
        return Ok(response);
    }
    let mut client = DfClient::new(client);
    for hook in hooks() {
        if let Some(result) = hook
            .handle_simple_query(statement, session.context(), &mut client)
            .await
        {
            session.settings_changed();
            return result;
        }
    }
    Err(unsupported(statement))
}

/// The plan a session statement announces at Parse (its result columns).
pub(crate) async fn plan<C: ClientInfo + Send + Sync>(
    client: &C,
    session: &Session,
    statement: &Statement,
) -> PgWireResult<Option<LogicalPlan>> {
    if let Some(error) = malformed(statement) {
        return Err(error);
    }
    if discard(statement).is_some() {
        return Ok(None);
    }
    for hook in hooks() {
        if let Some(plan) = hook
            .handle_extended_parse_query(statement, session.context(), client)
            .await
        {
            return plan.map(Some);
        }
    }
    Err(unsupported(statement))
}

/// Answers a session statement sent with the extended protocol.
pub(crate) async fn extended<C>(
    client: &mut C,
    session: &Session,
    statement: &Statement,
    plan: Option<&LogicalPlan>,
    params: &ParamValues,
) -> PgWireResult<Response>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some(error) = malformed(statement) {
        return Err(error);
    }
    close_subscriptions(&*client, statement);
    if let Some(response) = discard(statement) {
        return Ok(response);
    }
    let Some(plan) = plan else {
        return Err(unsupported(statement));
    };
    let mut client = DfClient::new(client);
    for hook in hooks() {
        if let Some(result) = hook
            .handle_extended_query(statement, plan, params, session.context(), &mut client)
            .await
        {
            session.settings_changed();
            return result;
        }
    }
    Err(unsupported(statement))
}
