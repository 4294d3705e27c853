//! SQL over Kafka: sources declared in DDL, queried through DataFusion.
//!
//! * `statement` — the front end every statement goes through, whatever sent it:
//!   parsed and classified once ([`Prepared`]: source DDL, session statement, point
//!   lookup, DataFusion plan), then run ([`Engine::execute`]); `point_lookup` — key
//!   lookups read from the index without planning; `shape` — literal lookups and
//!   statements sent again and again served without parsing.
//!
//! * `ddl` — `CREATE TABLE ... WITH (topic = ...)`, `CREATE STREAM`, `DROP`, parsed with
//!   DataFusion's SQL parser; `types` maps column types to Arrow.
//! * `provider` — the `TableProvider`s: key lookups served from a table's index, scans
//!   from its Arrow segments; a stream's retained window.
//! * [`subscribe`] — `SUBSCRIBE`: a source's changes as unbounded rows, its syntax
//!   in [`subscribe_syntax`]; `subscriptions_table` — the `ktable_subscriptions`
//!   relation, each source's subscriptions counted.
//! * `system` — the `ktable_tables` relation: every source's progress and counters.
//! * `guard` — what a statement may do before it is planned: expression depth, parse
//!   work (`dialect`: PostgreSQL's dialect with a budget), host file access, the
//!   settings a session may change.
//! * `memory`, `bounded_functions`, `host_access` — what queries may take: memory
//!   from the engine's pool and each session's share of it, string functions held to
//!   the same limit, no file or remote object store unless allowed.
//! * [`pg_compat`] — what PostgreSQL clients and BI tools read besides the tables:
//!   `pg_catalog`, `information_schema` gaps and the functions drivers call.
//! * `registry` / `engine` — [`Engine`]: owns the sources, runs SQL and DDL files, and
//!   registers sources into its own or a user's `SessionContext`.

mod bounded_functions;
mod ddl;
mod dialect;
mod engine;
mod error;
mod guard;
mod host_access;
mod memory;
pub mod pg_compat;
mod point_lookup;
mod provider;
mod registry;
mod script;
mod shape;
mod source_start;
mod statement;
pub mod subscribe;
pub mod subscribe_syntax;
mod subscriptions_table;
mod system;
mod types;

pub use ddl::{parse as parse_ddl, Ddl, DdlError, SourceDef, SourceKind};
pub use engine::{
    Engine, EngineConfig, DEFAULT_MAX_SOURCES, DEFAULT_MAX_USER_OBJECTS, DEFAULT_MEMORY_LIMIT,
    DEFAULT_QUERY_MEMORY_LIMIT,
};
pub use error::{datafusion_sqlstate, SqlError};
pub use guard::{
    is_session_statement, Checked, Refusal, StatementGuard, DEFAULT_MAX_EXPRESSION_DEPTH,
};
pub use point_lookup::PointLookup;
pub use provider::{KafkaTableProvider, StreamProvider};
pub use registry::SourceInfo;
pub use script::{split as split_script, ScriptStatement};
pub use statement::{Output, Prepared, StatementKind, SubscribeStatement};
pub use subscribe::{SubscribeError, SubscribePlan};
pub use subscriptions_table::SUBSCRIPTIONS_TABLE;
pub use system::SYSTEM_TABLE;
pub use types::{column_type, ColumnType};
