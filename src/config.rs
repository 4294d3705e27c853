//! `ktable serve --config ktable.toml`: everything the command line sets, plus what
//! does not fit on it (users, TLS files, Kafka client properties).
//!
//! A value given as a flag or `KTABLE_*` environment variable wins over the file,
//! which wins over the default.
//!
//! ```
//! let config: ktable::config::FileConfig = toml::from_str(r#"
//!     brokers = "kafka-1:9092,kafka-2:9092"
//!     listen = "0.0.0.0:5433"
//!     query_timeout = "30s"
//!     max_result_rows = 1000000
//!     memory_limit = "4 GiB"
//!     query_memory_limit = "512 MiB"
//!     authentication_timeout = "10s"
//!     idle_session_timeout = "30m"
//!
//!     [tls]
//!     cert = "/etc/ktable/server.crt"
//!     key = "/etc/ktable/server.key"
//!
//!     [[users]]
//!     name = "app"
//!     password = "s3cret"
//!
//!     [[users]]
//!     name = "analyst"
//!     password = "an4lyst"
//!     read_only = true
//!
//!     [kafka]
//!     "security.protocol" = "PLAINTEXT"
//! "#).unwrap();
//! assert_eq!(config.users.len(), 2);
//! assert_eq!(config.query_timeout, Some(std::time::Duration::from_secs(30)));
//! assert_eq!(config.memory_limit, Some(4 << 30));
//! ```

use crate::server::{TlsConfig, UserConfig};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The contents of a `--config` file; every field may be left out.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Kafka bootstrap servers; none means the embedded demo cluster.
    pub brokers: Option<String>,
    /// DDL file or folder.
    pub sql: Option<PathBuf>,
    /// The PostgreSQL protocol address.
    pub listen: Option<SocketAddr>,
    /// The address of the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`); none:
    /// no endpoint (the embedded demo serves one on 127.0.0.1:9187).
    pub http: Option<SocketAddr>,
    /// Client connections served at once.
    pub max_connections: Option<usize>,
    /// Connections from one IP address at once (0: no limit).
    pub max_connections_per_address: Option<usize>,
    /// How long a client may take to log in ("10s").
    #[serde(default, deserialize_with = "human_duration")]
    pub authentication_timeout: Option<Duration>,
    /// How long a logged-in session may sit idle outside a transaction ("30m").
    #[serde(default, deserialize_with = "human_duration")]
    pub idle_session_timeout: Option<Duration>,
    /// Prefix of the sources' consumer group ids.
    pub group_id: Option<String>,
    /// Schema registry URL for sources whose format needs one (Avro).
    pub schema_registry_url: Option<String>,
    /// How often each source's statistics are logged, in seconds.
    pub stats_interval_secs: Option<u64>,
    /// The longest one statement may run ("30s", "2m").
    #[serde(default, deserialize_with = "human_duration")]
    pub query_timeout: Option<Duration>,
    /// The most rows one result may send.
    pub max_result_rows: Option<u64>,
    /// The memory all queries may hold at once ("2 GiB").
    #[serde(default, deserialize_with = "byte_size")]
    pub memory_limit: Option<usize>,
    /// The memory one query may hold ("512 MiB").
    #[serde(default, deserialize_with = "byte_size")]
    pub query_memory_limit: Option<usize>,
    /// The deepest expression nesting a statement may have.
    pub max_expression_depth: Option<usize>,
    /// How many tables and views users may create in memory.
    pub max_user_objects: Option<usize>,
    /// How many Kafka tables and streams the server may serve.
    pub max_sources: Option<usize>,
    /// Let statements read and write the server's files (`COPY ... TO`, `CREATE
    /// EXTERNAL TABLE`).
    pub allow_host_access: Option<bool>,
    /// The most memory one table may hold ("8 GiB"); past it the table stops ingesting.
    #[serde(default, deserialize_with = "byte_size")]
    pub table_memory_limit: Option<usize>,
    /// The most memory all tables together may hold; past it a growing table stops
    /// ingesting.
    #[serde(default, deserialize_with = "byte_size")]
    pub tables_memory_limit: Option<usize>,
    /// Changes each source keeps for its subscribers once subscribed to; a
    /// subscriber further behind is ended (SQLSTATE 53400).
    pub subscribe_buffer: Option<usize>,
    /// Folder for table checkpoints; none keeps state in memory only.
    pub state_dir: Option<PathBuf>,
    /// How often each table writes a checkpoint ("60s").
    #[serde(default, deserialize_with = "human_duration")]
    pub checkpoint_interval: Option<Duration>,
    /// TLS certificate and key for client connections.
    pub tls: Option<TlsConfig>,
    /// Refuse clients that do not use TLS.
    pub require_tls: Option<bool>,
    /// How long running statements may take to finish at shutdown ("30s").
    #[serde(default, deserialize_with = "human_duration")]
    pub shutdown_grace: Option<Duration>,
    /// Users who may connect (SCRAM-SHA-256).
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// librdkafka properties for every consumer (`security.protocol`, `sasl.*`...).
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        message: String,
    },
}

impl FileConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.display().to_string(),
            error,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }
}

fn human_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Parses a size such as "512 MiB", "2GB" or "1048576" (bytes).
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text.trim().parse()?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{text} is too large"))
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| parse_byte_size(&t).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let error = toml::from_str::<FileConfig>("listn = \"127.0.0.1:5433\"").unwrap_err();
        assert!(error.to_string().contains("listn"), "{error}");
    }

    #[test]
    fn the_subscribe_buffer_is_read() {
        let config: FileConfig = toml::from_str("subscribe_buffer = 500").expect("parses");
        assert_eq!(config.subscribe_buffer, Some(500));
        assert!(toml::from_str::<FileConfig>("subscribe_buffer = -1").is_err());
    }

    #[test]
    fn bad_durations_are_refused() {
        assert!(toml::from_str::<FileConfig>("query_timeout = \"soon\"").is_err());
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_byte_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("1000"), Ok(1000));
        assert!(parse_byte_size("lots").is_err());
        assert!(toml::from_str::<FileConfig>("memory_limit = \"lots\"").is_err());
    }

    #[test]
    fn connection_limits_and_timeouts_are_read() {
        let config: FileConfig = toml::from_str(
            "max_connections_per_address = 8\n\
             authentication_timeout = \"5s\"\n\
             idle_session_timeout = \"30m\"",
        )
        .unwrap();
        assert_eq!(config.max_connections_per_address, Some(8));
        assert_eq!(config.authentication_timeout, Some(Duration::from_secs(5)));
        assert_eq!(config.idle_session_timeout, Some(Duration::from_secs(1800)));
    }

    #[test]
    fn state_settings_are_read() {
        let config: FileConfig =
            toml::from_str("state_dir = \"/var/lib/ktable\"\ncheckpoint_interval = \"5m\"")
                .unwrap();
        assert_eq!(config.state_dir, Some(PathBuf::from("/var/lib/ktable")));
        assert_eq!(config.checkpoint_interval, Some(Duration::from_secs(300)));
    }

    #[test]
    fn the_http_address_is_read() {
        let config: FileConfig = toml::from_str("http = \"0.0.0.0:9187\"").unwrap();
        assert_eq!(config.http, Some(SocketAddr::from(([0, 0, 0, 0], 9187))));
        assert!(toml::from_str::<FileConfig>("http = \"nowhere\"").is_err());
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        assert_eq!(
            toml::from_str::<FileConfig>("").unwrap(),
            FileConfig::default()
        );
    }

    #[test]
    fn user_passwords_are_not_printed() {
        let config: FileConfig =
            toml::from_str("[[users]]\nname = \"a\"\npassword = \"hunter2\"").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
