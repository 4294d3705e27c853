//! A Confluent schema registry client: schemas by id (cached) and a subject's latest.
//!
//! Records in Confluent's wire format carry a 4-byte schema id; decoding one needs the
//! schema registered under it. Ids are immutable in a registry, so a schema fetched by
//! id is cached for the life of the process: a record with a new id costs one request,
//! every later record none. An id the registry does not know is remembered for
//! [`MISSING_TTL`] so that a topic full of such records does not hammer it.
//!
//! The client is blocking ([`ureq`]): requests are rare (once per schema id) and short,
//! and a blocking client is a fraction of the build of an async one. Callers on async
//! threads go through [`blocking`], which moves the wait off the runtime's scheduler.
//!
//! An unreachable registry is a passing condition, not a bad record: the client answers
//! [`RegistryError::Unreachable`] (or a 5xx status), and stops asking for a growing
//! pause (100 ms doubling up to [`MAX_BACKOFF`]) during which calls fail at once;
//! [`SchemaRegistry::retry_after`] says how long. The sinks hand that to the source,
//! which keeps the batch, shows the error in `ktable_tables.last_error` and applies the
//! batch again once the pause is over: no record is skipped because the registry was
//! down, and other tables do not wait for this one.

use base64::Engine as _;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long an id the registry said it does not know is remembered as unknown.
pub const MISSING_TTL: Duration = Duration::from_secs(30);
/// The longest pause between attempts while the registry is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_secs(5);
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json";

/// The kind of a registered schema (`schemaType`; Avro when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// An Avro schema.
    Avro,
    /// A Protobuf file descriptor, as text.
    Protobuf,
    /// A JSON Schema.
    Json,
}

/// A schema as the registry holds it, parsed when it is Avro.
#[derive(Debug)]
pub struct RegisteredSchema {
    /// The registry's id of the schema.
    pub id: u32,
    /// Its kind.
    pub kind: SchemaKind,
    /// Its text.
    pub text: String,
    /// The parsed Avro schema, for Avro schemas.
    pub avro: Option<apache_avro::Schema>,
    /// The schemas it imports (Protobuf `import`s), by import name.
    pub references: Vec<SchemaReference>,
    /// The compiled Protobuf file, once compiled (see `protobuf::compiled`): compiled
    /// once per id, as the schema itself is fetched once.
    pub(super) protobuf: OnceLock<Arc<super::protobuf::ProtoSchema>>,
}

/// A schema another one imports: the version `version` of subject `subject`, imported
/// as `name` (a Protobuf import path such as `common.proto`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SchemaReference {
    /// The import name.
    pub name: String,
    /// The subject it is registered under.
    pub subject: String,
    /// The version of the subject.
    pub version: i64,
}

/// What the registry could not give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No answer (connection refused, timeout, TLS failure) or a server error: the
    /// condition passes; the caller retries later.
    #[error("schema registry {url} is unreachable: {reason}")]
    Unreachable {
        /// The registry.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The registry has no schema with this id.
    #[error("schema id {0} is not in the schema registry")]
    UnknownId(u32),
    /// The registry has no schema under this subject.
    #[error("subject '{0}' has no schema in the schema registry")]
    UnknownSubject(String),
    /// The registry answered something this client cannot use.
    #[error("schema registry answered {0}")]
    Invalid(String),
    /// The schema is not a schema of its kind.
    #[error("schema {id} cannot be parsed: {reason}")]
    BadSchema {
        /// The schema id.
        id: u32,
        /// Why.
        reason: String,
    },
}

impl RegistryError {
    /// True when asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. })
    }
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    id: Option<u32>,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

enum Cached {
    Found(Arc<RegisteredSchema>),
    Missing(Instant),
}

struct Backoff {
    next_attempt: Instant,
    pause: Duration,
    error: RegistryError,
}

/// A client of one schema registry. Cheap to share (`Arc`); see the module docs.
pub struct SchemaRegistry {
    url: String,
    authorization: Option<String>,
    agent: ureq::Agent,
    by_id: Mutex<HashMap<u32, Cached>>,
    backoff: Mutex<Option<Backoff>>,
    requests: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl SchemaRegistry {
    /// A client of the registry at `url` (`http://` or `https://`; user and password in
    /// the URL are sent as basic auth and not kept in the URL).
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        let mut parsed = url::Url::parse(url)
            .map_err(|e| RegistryError::Invalid(format!("an invalid URL '{url}': {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(RegistryError::Invalid(format!(
                "a URL that is not http(s): '{url}'"
            )));
        }
        let authorization = (!parsed.username().is_empty()).then(|| {
            let user = percent_decode(parsed.username());
            let password = parsed.password().map(percent_decode).unwrap_or_default();
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        // Neither can fail for an http(s) URL.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build();
        Ok(Self {
            url: parsed.as_str().trim_end_matches('/').to_string(),
            authorization,
            agent: config.into(),
            by_id: Mutex::new(HashMap::new()),
            backoff: Mutex::new(None),
            requests: Default::default(),
        })
    }

    /// The client of the registry at `url`, shared by every source of the process that
    /// names the same URL (so that they share its cache).
    pub fn shared(url: &str) -> Result<Arc<Self>, RegistryError> {
        static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<SchemaRegistry>>>> = OnceLock::new();
        let mut clients = CLIENTS.get_or_init(Default::default).lock();
        if let Some(client) = clients.get(url) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(Self::new(url)?);
        clients.insert(url.to_string(), Arc::clone(&client));
        Ok(client)
    }

    /// A client that already holds the Avro `schemas` (id, text), at an address where
    /// nothing answers: for tests of the decoders, without a registry.
    #[cfg(test)]
    pub(crate) fn holding(schemas: &[(u32, &str)]) -> Arc<Self> {
        Self::holding_of(None, schemas)
    }

    /// [`holding`](Self::holding) for `.proto` texts.
    #[cfg(test)]
    pub(crate) fn holding_protobuf(schemas: &[(u32, &str)]) -> Arc<Self> {
        Self::holding_of(Some("PROTOBUF"), schemas)
    }

    #[cfg(test)]
    fn holding_of(schema_type: Option<&str>, schemas: &[(u32, &str)]) -> Arc<Self> {
        let client = Self::new("http://127.0.0.1:9").expect("a valid URL");
        for (id, text) in schemas {
            let response = SchemaResponse {
                schema: text.to_string(),
                schema_type: schema_type.map(str::to_string),
                id: Some(*id),
                references: Vec::new(),
            };
            client.remember(*id, response).expect("a schema");
        }
        Arc::new(client)
    }

    /// The registry's URL (without credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many HTTP requests this client has sent (for tests and statistics).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long until the next attempt, while the registry is unreachable.
    pub fn retry_after(&self) -> Option<Duration> {
        let backoff = self.backoff.lock();
        backoff
            .as_ref()
            .map(|b| b.next_attempt.saturating_duration_since(Instant::now()))
    }

    /// The schema of `id` for a record being decoded: from the cache without leaving
    /// the thread (every record but the first of each schema), else fetched through
    /// [`blocking`], whose `block_in_place` on a Tokio worker is meant for the one call
    /// that may wait on the network, not for every record.
    pub fn schema_for_record(&self, id: u32) -> Result<Arc<RegisteredSchema>, RegistryError> {
        match self.cached(id) {
            Some(known) => known,
            None => blocking(|| self.schema_by_id(id)),
        }
    }

    /// What the cache knows of `id`: its schema, or that the registry lacked it a
    /// moment ago.
    fn cached(&self, id: u32) -> Option<Result<Arc<RegisteredSchema>, RegistryError>> {
        match self.by_id.lock().get(&id) {
            Some(Cached::Found(schema)) => Some(Ok(Arc::clone(schema))),
            Some(Cached::Missing(at)) if at.elapsed() < MISSING_TTL => {
                Some(Err(RegistryError::UnknownId(id)))
            }
            _ => None,
        }
    }

    /// The schema registered under `id`: from the cache, or fetched once.
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(known) = self.cached(id) {
            return known;
        }
        match self.get(&format!("/schemas/ids/{id}")) {
            Ok(Some(response)) => {
                let schema = Arc::new(parse_schema(id, response)?);
                self.by_id
                    .lock()
                    .insert(id, Cached::Found(Arc::clone(&schema)));
                Ok(schema)
            }
            Ok(None) => {
                self.by_id
                    .lock()
                    .insert(id, Cached::Missing(Instant::now()));
                Err(RegistryError::UnknownId(id))
            }
            Err(e) => Err(e),
        }
    }

    /// The latest schema registered under `subject` (not cached: it changes).
    pub fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>, RegistryError> {
        let path = format!("/subjects/{}/versions/latest", path_segment(subject));
        match self.get(&path)? {
            Some(response) => {
                let id = response.id.ok_or_else(|| {
                    RegistryError::Invalid(format!("no id for the latest schema of '{subject}'"))
                })?;
                self.remember(id, response)
            }
            None => Err(RegistryError::UnknownSubject(subject.to_string())),
        }
    }

    /// Version `version` of `subject` (a schema reference; a registered version never
    /// changes, and the schema is cached under its id).
    pub fn version(
        &self,
        subject: &str,
        version: i64,
    ) -> Result<Arc<RegisteredSchema>, RegistryError> {
        let version = if version < 0 {
            "latest".to_string()
        } else {
            version.to_string()
        };
        let path = format!("/subjects/{}/versions/{version}", path_segment(subject));
        match self.get(&path)? {
            Some(response) => {
                let id = response.id.ok_or_else(|| {
                    RegistryError::Invalid(format!("no id for version {version} of '{subject}'"))
                })?;
                self.remember(id, response)
            }
            None => Err(RegistryError::UnknownSubject(format!(
                "{subject} (version {version})"
            ))),
        }
    }

    /// The schema cached under `id`, else `response` parsed and cached: one schema
    /// value per id, so that what is derived from it (a compiled Protobuf file) is
    /// derived once.
    fn remember(
        &self,
        id: u32,
        response: SchemaResponse,
    ) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(Cached::Found(schema)) = self.by_id.lock().get(&id) {
            return Ok(Arc::clone(schema));
        }
        let schema = Arc::new(parse_schema(id, response)?);
        self.by_id
            .lock()
            .insert(id, Cached::Found(Arc::clone(&schema)));
        Ok(schema)
    }

    /// GETs `path`; None for 404.
    fn get(&self, path: &str) -> Result<Option<SchemaResponse>, RegistryError> {
        if let Some(backoff) = &*self.backoff.lock() {
            if Instant::now() < backoff.next_attempt {
                return Err(backoff.error.clone());
            }
        }
        let outcome = self.request(path);
        let mut backoff = self.backoff.lock();
        match &outcome {
            Err(error) if error.is_transient() => {
                let pause = backoff
                    .as_ref()
                    .map_or(FIRST_BACKOFF, |b| (b.pause * 2).min(MAX_BACKOFF));
                tracing::warn!(url = %self.url, %error, retry_in_ms = pause.as_millis() as u64, "schema registry request failed");
                *backoff = Some(Backoff {
                    next_attempt: Instant::now() + pause,
                    pause,
                    error: error.clone(),
                });
            }
            _ => {
                if backoff.take().is_some() {
                    tracing::info!(url = %self.url, "schema registry reachable again");
                }
            }
        }
        outcome
    }

    fn request(&self, path: &str) -> Result<Option<SchemaResponse>, RegistryError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unreachable = |reason: String| RegistryError::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let mut request = self
            .agent
            .get(format!("{}{path}", self.url))
            .header("Accept", ACCEPT);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = request.call().map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| unreachable(e.to_string()))?;
        match status {
            200 => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| RegistryError::Invalid(format!("{e} for {path}"))),
            404 => Ok(None),
            500.. => Err(unreachable(format!("status {status}: {body}"))),
            _ => Err(RegistryError::Invalid(format!(
                "status {status} for {path}: {body}"
            ))),
        }
    }
}

fn parse_schema(id: u32, response: SchemaResponse) -> Result<RegisteredSchema, RegistryError> {
    let kind = match response.schema_type.as_deref() {
        None | Some("AVRO") => SchemaKind::Avro,
        Some("PROTOBUF") => SchemaKind::Protobuf,
        Some("JSON") => SchemaKind::Json,
        Some(other) => {
            return Err(RegistryError::BadSchema {
                id,
                reason: format!("unknown schemaType '{other}'"),
            })
        }
    };
    let avro = match kind {
        SchemaKind::Avro => Some(
            apache_avro::Schema::parse_str(&super::avro::with_logical_types(&response.schema))
                .map_err(|e| RegistryError::BadSchema {
                    id,
                    reason: e.to_string(),
                })?,
        ),
        _ => None,
    };
    Ok(RegisteredSchema {
        id,
        kind,
        text: response.schema,
        avro,
        references: response.references,
        protobuf: OnceLock::new(),
    })
}

/// Runs a blocking registry call from any thread: on a multi-threaded Tokio runtime the
/// worker hands its other tasks away for the time of the call.
pub fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// Percent-encodes a subject for a URL path (subjects are usually `<topic>-value`).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then
/// the payload.
pub fn split_framing(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [0, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        [magic, ..] if bytes.len() >= 5 => Err(format!(
            "magic byte {magic} is not 0: not in Confluent's wire format"
        )),
        _ => Err(format!(
            "{} bytes are too few for Confluent's wire format (magic byte and schema id)",
            bytes.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_checked() {
        assert_eq!(split_framing(&[0, 0, 0, 1, 2, 9]), Ok((258, &[9u8][..])));
        assert!(split_framing(&[1, 0, 0, 0, 1])
            .unwrap_err()
            .contains("magic"));
        assert!(split_framing(&[0, 0]).unwrap_err().contains("too few"));
    }

    #[test]
    fn credentials_leave_the_url() {
        let client = SchemaRegistry::new("http://us%40er:p%3Ass@localhost:8081/").unwrap();
        assert_eq!(client.url(), "http://localhost:8081");
        assert_eq!(
            client.authorization.as_deref(),
            Some(
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("us@er:p:ss")
                )
                .as_str()
            )
        );
        assert!(SchemaRegistry::new("ftp://x").is_err());
        assert_eq!(path_segment("a b-value"), "a%20b-value");
    }

    #[test]
    fn an_unreachable_registry_backs_off() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let client = SchemaRegistry::new("http://127.0.0.1:9").unwrap();
        let first = client.schema_by_id(1).unwrap_err();
        assert!(first.is_transient(), "{first}");
        let pause = client.retry_after().expect("a pause");
        assert!(pause <= FIRST_BACKOFF);
        // Within the pause, no request is sent.
        assert!(client.schema_by_id(1).unwrap_err().is_transient());
        assert_eq!(client.requests(), 1);
    }
}
