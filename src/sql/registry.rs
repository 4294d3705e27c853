//! The sources an engine runs, by name.

use super::ddl::{SourceDef, SourceKind};
use super::provider::{KafkaTableProvider, StreamProvider};
use crate::source::{Source, SourceStats};
use crate::state::Checkpointing;
use crate::stream::{StreamSink, StreamStore};
use crate::table::columnar::{ColumnarSink, ColumnarTable};
use datafusion::catalog::TableProvider;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A running source and its store.
pub(crate) enum SourceHandle {
    Table {
        source: Source<ColumnarSink>,
        table: Arc<ColumnarTable>,
        /// With a state folder: the table's checkpoints and their periodic task, set
        /// when the table starts (which may be after it is declared, see
        /// `source_start`).
        checkpointing: OnceLock<Checkpointing>,
    },
    Stream {
        source: Source<StreamSink>,
        store: Arc<StreamStore>,
    },
}

impl SourceHandle {
    pub(crate) fn stats(&self) -> SourceStats {
        match self {
            SourceHandle::Table { source, .. } => source.stats(),
            SourceHandle::Stream { source, .. } => source.stats(),
        }
    }

    /// When the table's last checkpoint was cut, if it has any.
    pub(crate) fn last_checkpoint(&self) -> Option<std::time::SystemTime> {
        match self {
            SourceHandle::Table { checkpointing, .. } => checkpointing
                .get()
                .and_then(|c| c.checkpoints().last_checkpoint()),
            SourceHandle::Stream { .. } => None,
        }
    }

    pub(crate) fn provider(&self) -> Arc<dyn TableProvider> {
        match self {
            SourceHandle::Table { table, .. } => {
                Arc::new(KafkaTableProvider::new(Arc::clone(table)))
            }
            SourceHandle::Stream { store, .. } => Arc::new(StreamProvider::new(Arc::clone(store))),
        }
    }

    fn stop(&self) {
        match self {
            SourceHandle::Table { source, .. } => source.stop(),
            SourceHandle::Stream { source, .. } => source.stop(),
        }
    }

    /// Ends the subscriptions once they have read what was applied: no change
    /// will come (the source was dropped, or the engine stopped).
    pub(crate) fn close_changes(&self) {
        match self {
            SourceHandle::Table { table, .. } => table.changes().close(),
            SourceHandle::Stream { store, .. } => store.changes().close(),
        }
    }

    /// See [`Source::waiting_for_kafka`].
    pub(crate) fn waiting_for_kafka(&self, error: &crate::source::SourceError) {
        match self {
            SourceHandle::Table { source, .. } => source.waiting_for_kafka(error),
            SourceHandle::Stream { source, .. } => source.waiting_for_kafka(error),
        }
    }

    pub(crate) async fn wait_until_ready(
        &self,
        timeout: std::time::Duration,
    ) -> Result<(), crate::source::SourceError> {
        match self {
            SourceHandle::Table { source, .. } => source.wait_until_ready(timeout).await,
            SourceHandle::Stream { source, .. } => source.wait_until_ready(timeout).await,
        }
    }
}

pub(crate) struct RegisteredSource {
    pub(crate) def: SourceDef,
    pub(crate) handle: SourceHandle,
    /// Set by [`stop`](Self::stop): a start still pending must not happen.
    stopped: AtomicBool,
}

impl RegisteredSource {
    pub(crate) fn new(def: SourceDef, handle: SourceHandle) -> Self {
        Self {
            def,
            handle,
            stopped: AtomicBool::new(false),
        }
    }

    /// Stops the consumer, and any start still waiting for Kafka.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.handle.stop();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// What an engine reports about one of its sources.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// The relation name.
    pub name: String,
    /// Table or stream.
    pub kind: SourceKind,
    /// The value format.
    pub format: String,
    /// Progress and counters.
    pub stats: SourceStats,
    /// When the table's last checkpoint was cut (written or loaded), if any.
    pub last_checkpoint: Option<std::time::SystemTime>,
}

/// What [`Registry::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    Added,
    NameTaken,
    /// The registry holds its limit of sources.
    Full,
}

#[derive(Default)]
pub(crate) struct Registry {
    sources: RwLock<BTreeMap<String, Arc<RegisteredSource>>>,
}

impl Registry {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<RegisteredSource>> {
        self.sources.read().get(name).cloned()
    }

    /// Adds a source unless one has that name or `limit` sources are registered.
    pub(crate) fn insert(&self, source: Arc<RegisteredSource>, limit: usize) -> Inserted {
        let mut sources = self.sources.write();
        if sources.contains_key(&source.def.name) {
            return Inserted::NameTaken;
        }
        if sources.len() >= limit {
            return Inserted::Full;
        }
        sources.insert(source.def.name.clone(), source);
        Inserted::Added
    }

    /// How many sources are registered.
    pub(crate) fn len(&self) -> usize {
        self.sources.read().len()
    }

    /// Forgets a source (it was dropped); its subscriptions end once they have read
    /// the changes it applied.
    pub(crate) fn remove(&self, name: &str) -> Option<Arc<RegisteredSource>> {
        let removed = self.sources.write().remove(name);
        if let Some(source) = &removed {
            source.handle.close_changes();
        }
        removed
    }

    pub(crate) fn all(&self) -> Vec<Arc<RegisteredSource>> {
        self.sources.read().values().cloned().collect()
    }

    pub(crate) fn infos(&self) -> Vec<SourceInfo> {
        self.all()
            .iter()
            .map(|s| SourceInfo {
                name: s.def.name.clone(),
                kind: s.def.kind,
                format: s.def.format.clone(),
                stats: s.handle.stats(),
                last_checkpoint: s.handle.last_checkpoint(),
            })
            .collect()
    }
}
