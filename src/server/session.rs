//! One client session's SQL state: its own DataFusion context, and the format options
//! its results are encoded with.
//!
//! Each connection gets a context of its own from `Engine::session_context`: the
//! engine's tables, functions and catalogs, with settings and a memory budget of its
//! own. A `SET` therefore changes that session only, as in PostgreSQL; before, every
//! session shared the engine's context, and one user's `SET
//! datafusion.runtime.memory_limit = '1K'` failed everyone else's aggregates. The
//! session is made on the connection's first statement and kept in its session
//! extensions, so it lives and dies with the connection.

use crate::sql::{Engine, Prepared};
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::api::results::FieldInfo;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use parking_lot::Mutex;
use std::sync::Arc;

/// A connection's context and result format.
pub(crate) struct Session {
    context: Arc<SessionContext>,
    /// How values are written (DateStyle, bytea_output...), from the session's
    /// settings; made once and kept until a session statement may have changed them,
    /// rather than for every result.
    format: Mutex<Option<Arc<FormatOptions>>>,
    /// The field descriptions of the last point lookup sent as text (psql and BI
    /// tools send the same lookup again and again with another literal), with the
    /// statement and format options they were made for.
    lookup_fields: Mutex<Option<LookupFields>>,
}

type LookupFields = (Arc<Prepared>, Arc<FormatOptions>, Arc<Vec<FieldInfo>>);

impl Session {
    /// `client`'s session, made on first use.
    pub(crate) fn of<C: ClientInfo + ?Sized>(client: &C, engine: &Engine) -> Arc<Session> {
        client.session_extensions().get_or_insert_with(|| Session {
            context: Arc::new(engine.session_context()),
            format: Mutex::new(None),
            lookup_fields: Mutex::new(None),
        })
    }

    /// The session's context.
    pub(crate) fn context(&self) -> &Arc<SessionContext> {
        &self.context
    }

    /// The options `client`'s results are written with.
    pub(crate) fn format<C: ClientInfo + ?Sized>(&self, client: &C) -> Arc<FormatOptions> {
        Arc::clone(self.format.lock().get_or_insert_with(|| {
            Arc::new(FormatOptions::from_client_metadata(client.metadata()))
        }))
    }

    /// The text-format field descriptions of `lookup`'s rows for `client`, made by
    /// `make` unless the same lookup was last answered with the same options.
    pub(crate) fn lookup_fields<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        lookup: &Arc<Prepared>,
        make: impl FnOnce(&Arc<FormatOptions>) -> PgWireResult<Arc<Vec<FieldInfo>>>,
    ) -> PgWireResult<Arc<Vec<FieldInfo>>> {
        let options = self.format(client);
        let mut cached = self.lookup_fields.lock();
        if let Some((prepared, made_with, fields)) = cached.as_ref() {
            if Arc::ptr_eq(prepared, lookup) && Arc::ptr_eq(made_with, &options) {
                return Ok(Arc::clone(fields));
            }
        }
        let fields = make(&options)?;
        *cached = Some((Arc::clone(lookup), options, Arc::clone(&fields)));
        Ok(fields)
    }

    /// Forgets the result format: a session statement ran and may have changed it.
    pub(crate) fn settings_changed(&self) {
        *self.format.lock() = None;
    }
}
