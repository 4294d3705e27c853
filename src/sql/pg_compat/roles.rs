//! The roles `pg_roles` lists (psql's `\du`, DBeaver's and pgAdmin's role lists): the
//! users the server lets log in, none of them a superuser or able to create
//! anything (ktable has no `CREATE ROLE` or `CREATE DATABASE`).

use async_trait::async_trait;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    PgCatalogContextProvider, Role,
};
use std::sync::Arc;

/// The login names the catalog shows as roles.
#[derive(Debug, Clone, Default)]
pub(super) struct LoginRoles {
    names: Arc<[String]>,
}

impl LoginRoles {
    pub(super) fn new(names: &[String]) -> Self {
        Self {
            names: names.into(),
        }
    }
}

#[async_trait]
impl PgCatalogContextProvider for LoginRoles {
    async fn roles(&self) -> Vec<String> {
        self.names.to_vec()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        self.names.iter().any(|n| n == name).then(|| Role {
            name: name.to_string(),
            is_superuser: false,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}
