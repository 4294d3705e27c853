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

use crate::sql::Engine;
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::api::ClientInfo;
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
}

impl Session {
    /// `client`'s session, made on first use.
    pub(crate) fn of<C: ClientInfo + ?Sized>(client: &C, engine: &Engine) -> Arc<Session> {
        client.session_extensions().get_or_insert_with(|| Session {
            context: Arc::new(engine.session_context()),
            format: Mutex::new(None),
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

    /// Forgets the result format: a session statement ran and may have changed it.
    pub(crate) fn settings_changed(&self) {
        *self.format.lock() = None;
    }
}
