//! Starting a declared source, and starting it later when Kafka cannot be reached.
//!
//! A server restarted while its brokers are down (a rolling upgrade, a network
//! partition at boot) should come up, answer SQL and report itself not ready, not
//! exit: its supervisor would restart it in a loop, and it would lose the sources
//! that could start. So a start that fails because no broker answers
//! ([`SourceError::is_unreachable`]) registers the source anyway (empty, not ready,
//! `last_error` saying why) and keeps retrying with backoff until the start
//! succeeds or the source is dropped. A start that Kafka refuses (the topic does
//! not exist) still fails the statement at once.

use super::registry::{RegisteredSource, Registry, SourceHandle};
use crate::source::SourceError;
use crate::state::{describe_schema, CheckpointDir, CheckpointStore, TableCheckpoints};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The first wait before retrying a start, doubled after each failure up to the last.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(15);

/// What starting a source needs from the engine's configuration.
#[derive(Clone)]
pub(crate) struct StartSettings {
    /// With a state folder, tables start from their checkpoints and keep writing them.
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) checkpoint_interval: Duration,
}

impl StartSettings {
    /// Starts the source's consumer: a table from its checkpoint when there is a
    /// state folder (and then checkpoints it periodically), else from the earliest
    /// offsets.
    pub(crate) async fn start(&self, registered: &RegisteredSource) -> Result<(), SourceError> {
        let def = &registered.def;
        match &registered.handle {
            SourceHandle::Table {
                source,
                table,
                checkpointing,
            } => match &self.state_dir {
                Some(dir) => {
                    let dir = CheckpointDir::new(dir, &def.name);
                    let schema = describe_schema(&def.schema, &def.format);
                    let store = Arc::clone(table) as Arc<dyn CheckpointStore>;
                    let checkpoints =
                        TableCheckpoints::start(&def.name, dir, schema, source, store).await?;
                    // Only one start succeeds per source, so the cell is empty here.
                    let _ =
                        checkpointing.set(Arc::new(checkpoints).every(self.checkpoint_interval));
                    Ok(())
                }
                None => source.start().await,
            },
            SourceHandle::Stream { source, .. } => source.start().await,
        }
    }

    /// Retries [`start`](Self::start) in the background until it succeeds, or until
    /// the source is stopped or dropped from `registry`. Meanwhile the source reports
    /// the last failure as its `last_error` and is not ready.
    pub(crate) fn retry(
        self,
        registered: &Arc<RegisteredSource>,
        registry: &Arc<Registry>,
        first_failure: &SourceError,
        kafka_unreachable: &Arc<AtomicBool>,
    ) {
        registered.handle.waiting_for_kafka(first_failure);
        let name = registered.def.name.clone();
        tracing::warn!(source = %name, error = %first_failure, "Kafka unreachable: the source is declared and starts when Kafka answers");
        let (registered, registry) = (Arc::downgrade(registered), Arc::downgrade(registry));
        let kafka_unreachable = Arc::clone(kafka_unreachable);
        tokio::spawn(async move {
            let mut wait = FIRST_RETRY;
            loop {
                tokio::time::sleep(wait).await;
                let Some(source) = still_declared(&registered, &registry, &name) else {
                    return;
                };
                match self.start(&source).await {
                    Ok(()) => {
                        kafka_unreachable.store(false, Ordering::Release);
                        tracing::info!(source = %name, "started after waiting for Kafka");
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(source = %name, %error, "still cannot start");
                        source.handle.waiting_for_kafka(&error);
                        wait = (wait * 2).min(LONGEST_RETRY);
                    }
                }
            }
        });
    }
}

/// The source, if it is still the one declared under `name` and not stopped.
fn still_declared(
    registered: &Weak<RegisteredSource>,
    registry: &Weak<Registry>,
    name: &str,
) -> Option<Arc<RegisteredSource>> {
    let (source, registry) = (registered.upgrade()?, registry.upgrade()?);
    let current = registry.get(name)?;
    (Arc::ptr_eq(&source, &current) && !source.is_stopped()).then_some(source)
}
