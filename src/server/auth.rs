//! Who may connect, and what they may do once connected.
//!
//! Passwords are checked with SCRAM-SHA-256 (pgwire's SASL handler): the password
//! never crosses the wire, and the server keeps only a salted hash per user, computed
//! at start-up from the configured password with a fresh random salt. A read-only
//! user may query but not run DDL or anything that writes.

use super::errors::error_with_code;
use crate::sql::Prepared;
use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{
    gen_salted_password, ScramAuth, SCRAM_ITERATIONS,
};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
    METADATA_USER,
};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;
use rand::RngCore;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// A user allowed to connect.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The login name.
    pub name: String,
    /// The password; kept only as a salted SCRAM hash once the server starts.
    pub password: String,
    /// May query but not run DDL.
    #[serde(default)]
    pub read_only: bool,
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password (configs get logged).
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Salted passwords by user name: what SCRAM verifies proofs against.
struct SaltedPasswords {
    users: HashMap<String, Password>,
}

impl fmt::Debug for SaltedPasswords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltedPasswords")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn random_salt() -> Vec<u8> {
    let mut salt = vec![0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    salt
}

impl SaltedPasswords {
    fn new(users: &[UserConfig]) -> Self {
        let users = users
            .iter()
            .map(|user| {
                let salt = random_salt();
                let salted = gen_salted_password(&user.password, &salt, SCRAM_ITERATIONS);
                (user.name.clone(), Password::new(Some(salt), salted))
            })
            .collect();
        Self { users }
    }
}

#[async_trait]
impl AuthSource for SaltedPasswords {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        match login.user().and_then(|user| self.users.get(user)) {
            Some(password) => Ok(password.clone()),
            // An unknown user goes through the same exchange and fails the same way as
            // a wrong password, so the answer does not tell which users exist.
            None => Ok(Password::new(Some(random_salt()), random_salt())),
        }
    }
}

/// How connections authenticate.
pub(crate) struct Authenticator {
    passwords: Option<Arc<SaltedPasswords>>,
    connections: Arc<ConnectionManager>,
    /// The server's one source of process ids and secret keys. pgwire's startup
    /// handlers each start their own counter at 100000, and ktable makes a handler per
    /// connection, so every connection got process id 100000 and a cancel request
    /// found only the first one. Shared, the counter gives each connection its own id;
    /// the secret keys are random (`rand`'s thread RNG, a CSPRNG).
    ids: Arc<RandomPidSecretKeyGenerator>,
}

impl Authenticator {
    /// SCRAM over `users`, or no authentication when there are none.
    pub(crate) fn new(users: &[UserConfig], connections: Arc<ConnectionManager>) -> Self {
        Self {
            passwords: (!users.is_empty()).then(|| Arc::new(SaltedPasswords::new(users))),
            connections,
            ids: Arc::default(),
        }
    }

    /// A startup handler for one connection (pgwire's SASL handler keeps the state of
    /// one exchange, so each connection needs its own).
    pub(crate) fn startup(&self) -> Startup {
        match &self.passwords {
            None => Startup::Open(OpenStartup {
                connections: Arc::clone(&self.connections),
                ids: Arc::clone(&self.ids),
            }),
            Some(passwords) => {
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = super::SERVER_VERSION.to_string();
                let scram = ScramAuth::new(Arc::clone(passwords) as Arc<dyn AuthSource>);
                Startup::Scram(Box::new(
                    SASLAuthStartupHandler::new(Arc::new(parameters))
                        .with_scram(scram)
                        .with_pid_secret_key_generator(
                            Arc::clone(&self.ids) as Arc<dyn PidSecretKeyGenerator>
                        )
                        .with_connection_manager(Arc::clone(&self.connections)),
                ))
            }
        }
    }
}

/// Startup without authentication, registering each connection so cancel requests
/// find it.
pub(crate) struct OpenStartup {
    connections: Arc<ConnectionManager>,
    ids: Arc<RandomPidSecretKeyGenerator>,
}

#[async_trait]
impl NoopStartupHandler for OpenStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }

    fn pid_secret_key_generator(&self) -> &dyn PidSecretKeyGenerator {
        &*self.ids
    }
}

/// One connection's startup: open, or SCRAM-SHA-256.
pub(crate) enum Startup {
    Open(OpenStartup),
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Open(open) => open.on_startup(client, message).await,
            Startup::Scram(scram) => scram.on_startup(client, message).await,
        }
    }
}

/// What each user may do.
#[derive(Debug, Default)]
pub(crate) struct Access {
    read_only: HashSet<String>,
}

impl Access {
    pub(crate) fn new(users: &[UserConfig]) -> Self {
        Self {
            read_only: users
                .iter()
                .filter(|u| u.read_only)
                .map(|u| u.name.clone())
                .collect(),
        }
    }

    fn is_read_only<C: ClientInfo>(&self, client: &C) -> bool {
        !self.read_only.is_empty()
            && client
                .metadata()
                .get(METADATA_USER)
                .is_some_and(|user| self.read_only.contains(user))
    }

    /// Refuses a read-only user a statement that writes or declares.
    pub(crate) fn check<C: ClientInfo>(&self, client: &C, prepared: &Prepared) -> PgWireResult<()> {
        match prepared.writes() {
            Some(what) if self.is_read_only(client) => Err(denied(what)),
            _ => Ok(()),
        }
    }
}

fn denied(what: &str) -> PgWireError {
    error_with_code(
        "42501", // insufficient_privilege
        format!("permission denied: {what} is not allowed for a read-only user"),
    )
}
