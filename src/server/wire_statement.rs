//! A statement as the extended protocol keeps it: the engine's [`Prepared`] statement
//! plus what the wire needs of it, worked out once at Parse rather than at every
//! Execute: the parameters' PostgreSQL types, the session plan of a `SET` or cursor
//! statement, and the result's field descriptions.

use super::results;
use crate::sql::{Prepared, StatementKind};
use arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion_postgres::arrow_pg::datatypes::{
    into_pg_type, pg_type_for_alias_kind, PG_OID_ALIAS_KEY,
};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::FieldInfo;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// A prepared statement of one connection.
pub struct WireStatement {
    pub(crate) prepared: Arc<Prepared>,
    /// For a session statement: the plan datafusion-postgres's hooks made of it.
    pub(crate) session_plan: Option<LogicalPlan>,
    /// `$1, $2, ...` as ParameterDescription announces them.
    pub(crate) parameter_types: Vec<Type>,
    /// The DataFusion types of the parameters, as far as the plan tells them.
    pub(crate) inferred_types: Vec<Option<DataType>>,
    /// Whether a lookup's key arrives as text (declared text, or left to the server):
    /// only then is it served from the index, any other type goes through DataFusion.
    pub(crate) text_key: bool,
    /// The result's fields for the last few format options and formats asked, reused
    /// while they stay the same (they do, statement after statement: a Describe's and
    /// an Execute's, each time).
    fields: Mutex<Vec<CachedFields>>,
}

/// The field descriptions a statement keeps: a Describe's (made with options of
/// their own), an Execute's, and room for a client that changes formats.
const CACHED_FIELDS: usize = 4;

/// Field descriptions and the format options and format they were made for.
type CachedFields = (Arc<FormatOptions>, Format, Arc<Vec<FieldInfo>>);

impl WireStatement {
    /// `prepared` with parameters declared by the client as `declared`.
    pub(crate) fn new(
        prepared: Arc<Prepared>,
        session_plan: Option<LogicalPlan>,
        declared: &[Option<Type>],
    ) -> PgWireResult<Self> {
        let inferred_types = prepared.parameter_types().unwrap_or_default();
        let overrides = prepared.plan().map(oid_parameters).unwrap_or_default();
        let parameter_types = inferred_types
            .iter()
            .enumerate()
            .map(|(i, inferred)| {
                if let Some(Some(declared)) = declared.get(i) {
                    return Ok(declared.clone());
                }
                if let Some(oid) = overrides.get(&format!("${}", i + 1)) {
                    return Ok(oid.clone());
                }
                match inferred {
                    Some(data_type) => into_pg_type(data_type),
                    None => Ok(Type::UNKNOWN),
                }
            })
            .collect::<PgWireResult<Vec<_>>>()?;
        // The key's type as the client will send it: declared, else the key column's.
        let text_key = prepared.kind() == StatementKind::PointLookup
            && declared.len() <= 1
            && parameter_types.len() == 1
            && is_text(&parameter_types[0]);
        Ok(Self {
            prepared,
            session_plan,
            parameter_types,
            inferred_types,
            text_key,
            fields: Mutex::new(Vec::with_capacity(CACHED_FIELDS)),
        })
    }

    /// The result's fields in `format`, written with `options`.
    pub(crate) fn fields(
        &self,
        format: &Format,
        options: &Arc<FormatOptions>,
    ) -> PgWireResult<Arc<Vec<FieldInfo>>> {
        let mut cached = self.fields.lock();
        let hit = cached.iter().find(|(cached_options, cached_format, _)| {
            Arc::ptr_eq(cached_options, options) && same_format(cached_format, format)
        });
        if let Some((_, _, fields)) = hit {
            return Ok(Arc::clone(fields));
        }
        let fields = results::fields(&self.prepared.schema(), format, options)?;
        if cached.len() == CACHED_FIELDS {
            cached.remove(0);
        }
        cached.push((Arc::clone(options), format.clone(), Arc::clone(&fields)));
        Ok(fields)
    }
}

fn same_format(a: &Format, b: &Format) -> bool {
    match (a, b) {
        (Format::UnifiedText, Format::UnifiedText) => true,
        (Format::UnifiedBinary, Format::UnifiedBinary) => true,
        (Format::Individual(a), Format::Individual(b)) => a == b,
        _ => false,
    }
}

/// Parameter types with which a lookup's key arrives as UTF-8 text, whatever the
/// format: a string type, declared by the client or the key column's own.
fn is_text(t: &Type) -> bool {
    *t == Type::TEXT
        || *t == Type::VARCHAR
        || *t == Type::BPCHAR
        || *t == Type::NAME
        || *t == Type::UNKNOWN
}

/// Parameters compared with an oid column of the catalog (`pg_type.oid = $1`): their
/// type is OID, not the INT4 the column is stored as, so drivers bind an oid.
fn oid_parameters(plan: &LogicalPlan) -> HashMap<String, Type> {
    let mut found = HashMap::new();
    let _ = plan.apply(|node| {
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                let placeholder = match e {
                    Expr::Placeholder(p) => Some(p),
                    Expr::Cast(cast) => match cast.expr.as_ref() {
                        Expr::Placeholder(p) => Some(p),
                        _ => None,
                    },
                    _ => None,
                };
                let oid_type = placeholder.and_then(|p| {
                    let field = p.field.as_ref()?;
                    if field.data_type() != &DataType::Int32 {
                        return None;
                    }
                    let kind = field.metadata().get(PG_OID_ALIAS_KEY)?;
                    Some((p.id.clone(), pg_type_for_alias_kind(kind)?))
                });
                if let Some((id, oid_type)) = oid_type {
                    found.insert(id, oid_type);
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
