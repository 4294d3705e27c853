//! SQL over Kafka: sources declared in DDL, queried through DataFusion.
//!
//! * `ddl` — `CREATE TABLE ... WITH (topic = ...)`, `CREATE STREAM`, `DROP`, parsed with
//!   DataFusion's SQL parser; `types` maps column types to Arrow.
//! * `provider` — the `TableProvider`s: key lookups served from a table's index, scans
//!   from its Arrow segments; a stream's retained window.
//! * `system` — the `ktable_tables` relation: every source's progress and counters.
//! * `registry` / `engine` — [`Engine`]: owns the sources, runs SQL and DDL files, and
//!   registers sources into its own or a user's `SessionContext`.

mod ddl;
mod engine;
mod error;
mod provider;
mod registry;
mod script;
mod system;
mod types;

pub use ddl::{parse as parse_ddl, Ddl, DdlError, SourceDef, SourceKind};
pub use engine::{Engine, EngineConfig};
pub use error::SqlError;
pub use provider::{KafkaTableProvider, StreamProvider};
pub use registry::SourceInfo;
pub use script::{split as split_script, ScriptStatement};
pub use system::SYSTEM_TABLE;
pub use types::{column_type, ColumnType};
