//! One client session's SQL state: its own DataFusion context and the
//! datafusion-postgres service over it.
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
use datafusion_postgres::DfSessionService;
use std::sync::Arc;

/// A connection's context and the service that runs statements on it.
pub(crate) struct Session {
    context: Arc<SessionContext>,
    service: Arc<DfSessionService>,
}

impl Session {
    /// `client`'s session, made on first use.
    pub(crate) fn of<C: ClientInfo + ?Sized>(client: &C, engine: &Engine) -> Arc<Session> {
        client.session_extensions().get_or_insert_with(|| {
            let context = Arc::new(engine.session_context());
            Session {
                service: Arc::new(DfSessionService::new(Arc::clone(&context))),
                context,
            }
        })
    }

    /// The session's context.
    pub(crate) fn context(&self) -> &SessionContext {
        &self.context
    }

    /// datafusion-postgres's handlers over the session's context.
    pub(crate) fn service(&self) -> &Arc<DfSessionService> {
        &self.service
    }
}
