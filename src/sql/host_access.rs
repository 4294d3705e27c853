//! The object store registry of an engine that may not reach the host: no URL
//! resolves to a store, so DataFusion cannot read or write a file or a remote object.
//!
//! DataFusion's default registry maps `file://` to the local file system, which makes
//! every `COPY ... TO '/path'` and `CREATE EXTERNAL TABLE ... LOCATION '/path'` a read
//! or write of the server's disk as the server's OS user. The statement guard refuses
//! those statements by name; this registry is the layer under it, so a form the guard
//! does not know still finds no store. Kafka sources never use object stores.

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::object_store::ObjectStore;
use std::sync::Arc;
use url::Url;

/// An object store registry that refuses every URL.
#[derive(Debug, Default)]
pub(crate) struct NoHostAccess;

impl ObjectStoreRegistry for NoHostAccess {
    fn register_store(
        &self,
        url: &Url,
        _store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        // Nothing registered is ever served; say so where an operator looks.
        tracing::warn!(%url, "object store not registered: host access is not allowed");
        None
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        Err(DataFusionError::Plan(format!(
            "permission denied: {url} is on the server's host; this server does not allow \
             host access (allow_host_access)"
        )))
    }
}
