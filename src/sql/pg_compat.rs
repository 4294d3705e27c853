//! PostgreSQL compatibility for clients: what they read about the server besides the
//! tables, `pg_catalog` (from datafusion-pg-catalog, with ktable's keys, indexes and
//! `pg_type` oids in `catalog`), `information_schema` as PostgreSQL shapes it
//! (`information_schema`), the functions drivers and BI tools call while connecting
//! or inspecting (`version()`, `current_setting`, `pg_get_indexdef`, ...), the
//! planning of the correlated subqueries their catalog queries are written with, and
//! two rewrites the statement front end applies to every parsed statement:
//! [`name_columns_like_postgres`], so that result columns are named as PostgreSQL
//! names them (`count`, not `count(*)`), and [`rewrite_postgres_syntax`], for the
//! PostgreSQL syntax DataFusion plans differently or not at all (`(expr).field`,
//! functions in FROM, `ARRAY(subquery)`, `LIKE ... ESCAPE`, ...).

mod acl;
mod catalog;
mod column_names;
mod functions;
mod information_schema;
mod json;
mod like_escape;
mod pg_settings;
mod roles;
mod single_row;
mod sizes;
mod subquery;
mod syntax;

use arrow::array::{Array, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    create_udf, ColumnarValue, ScalarUDF, Signature, SimpleScalarUDF, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use std::sync::Arc;

pub use column_names::{name_columns_like_postgres, postgres_column_name};

/// Rewrites the PostgreSQL syntax of a parsed statement that DataFusion plans
/// differently or not at all into what it plans with PostgreSQL's answer (see the
/// `syntax` module). `is_table_function` tells whether a name is a table function of
/// the context the statement will be planned in: a function in FROM that is not one
/// becomes a one-row relation, as in PostgreSQL. Apply it with [`install`]'s
/// functions on the context: the rewrites call some of them.
///
/// ```
/// use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};
/// let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT (f(x)).n FROM t")?.remove(0);
/// ktable::sql::pg_compat::rewrite_postgres_syntax(&mut statement, &|_| false);
/// assert_eq!(statement.to_string(), "SELECT (f(x))['n'] FROM t");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rewrite_postgres_syntax(
    statement: &mut datafusion::sql::sqlparser::ast::Statement,
    is_table_function: &dyn Fn(&str) -> bool,
) {
    syntax::rewrite(statement, is_table_function);
}

/// Adds the catalog and the driver functions to `context` (once; a second call only
/// re-registers the functions).
///
/// The server installs this on the engine's context before it serves; an embedder
/// whose users connect through PostgreSQL tools may install it on their own context.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let context = datafusion::prelude::SessionContext::new();
/// ktable::sql::pg_compat::install(&context)?;
/// let version = context.sql("SELECT version()").await?.collect().await?;
/// assert_eq!(version[0].num_rows(), 1);
/// # Ok(()) }
/// ```
pub fn install(context: &SessionContext) -> datafusion::error::Result<()> {
    install_with_roles(context, &[])
}

/// [`install`], with `roles` (the users who may log in) listed in `pg_roles`, as the
/// server does. The roles are set when the catalog is first installed on `context`.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let context = datafusion::prelude::SessionContext::new();
/// ktable::sql::pg_compat::install_with_roles(&context, &["analyst".to_string()])?;
/// let roles = context.sql("SELECT rolname FROM pg_catalog.pg_roles").await?.collect().await?;
/// assert_eq!(roles[0].num_rows(), 1);
/// # Ok(()) }
/// ```
pub fn install_with_roles(
    context: &SessionContext,
    roles: &[String],
) -> datafusion::error::Result<()> {
    // Drivers parse version() as PostgreSQL's (SQLAlchemy refuses DataFusion's).
    context.register_udf(version_udf());
    context.register_udf(to_regtype_udf());
    context.register_udf(pg_get_serial_sequence_udf());
    context.register_udf(json::json_build_object_udf());
    context.register_udf(pg_collation_is_visible_udf());
    context.register_udf(like_escape::like_escape_udf());
    // psql's \d commands and BI tools read pg_catalog.
    let keys = install_pg_catalog(context, roles)?;
    // Grafana and Metabase browse with information_schema, as PostgreSQL shapes it.
    information_schema::install(context)?;
    // After the crate's functions, so that ours replace its stand-ins of the same name.
    for function in functions::all(&keys) {
        context.register_udf(function);
    }
    for function in sizes::all(&keys, context.state().catalog_list()) {
        context.register_udf(function);
    }
    Ok(())
}

/// Installs datafusion-pg-catalog's `pg_catalog` under ktable's [`catalog::PgCatalog`]
/// (once per context) and returns the directory of keys its functions read.
fn install_pg_catalog(
    context: &SessionContext,
    roles: &[String],
) -> datafusion::error::Result<Arc<catalog::KeyDirectory>> {
    let Some(datafusion_catalog) = context.catalog("datafusion") else {
        return Err(DataFusionError::Configuration(
            "pg_compat needs the default catalog \"datafusion\"".to_string(),
        ));
    };
    let existing = datafusion_catalog.schema("pg_catalog");
    if let Some(installed) = existing
        .as_ref()
        .and_then(|s| s.downcast_ref::<catalog::PgCatalog>())
    {
        return Ok(installed.keys());
    }
    if existing.is_none() {
        setup_pg_catalog(context, "datafusion", roles::LoginRoles::new(roles)).map_err(|e| *e)?;
    }
    let Some(inner) = datafusion_catalog.schema("pg_catalog") else {
        return Err(DataFusionError::Configuration(
            "datafusion-pg-catalog did not register pg_catalog".to_string(),
        ));
    };
    let keys = Arc::new(catalog::KeyDirectory::default());
    datafusion_catalog.register_schema(
        "pg_catalog",
        Arc::new(catalog::PgCatalog::new(
            inner,
            Arc::clone(context.state().catalog_list()),
            Arc::clone(&keys),
        )),
    )?;
    // Once per context: analyzer rules are not replaced by name.
    context.add_analyzer_rule(Arc::new(subquery::SingleRowSubqueries::new(
        single_row::single_row_udaf(),
    )));
    Ok(keys)
}

/// `version()` in PostgreSQL's format, naming ktable and DataFusion after it.
fn version_udf() -> ScalarUDF {
    let version = format!(
        "PostgreSQL 16.6 on {}-linux, ktable {} (Apache DataFusion)",
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    )
}

/// `to_regtype(name)`: psycopg looks up optional types (SQLAlchemy asks for `hstore`)
/// with it. ktable defines no such types, so the answer is always NULL ("no such
/// type"), which drivers take as the type being absent.
fn to_regtype_udf() -> ScalarUDF {
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)))),
    )
}

/// `pg_get_serial_sequence(table, column)`: SQLAlchemy asks it for every column it
/// inspects. ktable has no sequences: always NULL.
fn pg_get_serial_sequence_udf() -> ScalarUDF {
    create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    )
}

/// `pg_collation_is_visible(oid)`: SQLAlchemy asks it to decide whether to qualify a
/// column's collation. Every collation in ktable's pg_catalog lives in the
/// `pg_catalog` schema, which is always on the search path: true (NULL for NULL).
fn pg_collation_is_visible_udf() -> ScalarUDF {
    // Oid columns are Int32 here; an oid written as a literal is Int64.
    let signature = Signature::uniform(
        1,
        vec![DataType::Int32, DataType::Int64],
        Volatility::Immutable,
    );
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "pg_collation_is_visible",
        signature,
        DataType::Boolean,
        Arc::new(|args| {
            let oids = ColumnarValue::values_to_arrays(args)?;
            let Some(oids) = oids.first() else {
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
            };
            let visible: BooleanArray = (0..oids.len())
                .map(|i| (!oids.is_null(i)).then_some(true))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(visible)))
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        install(&ctx).unwrap();
        ctx.sql("CREATE TABLE cols (tbl INT, num INT, hasdef BOOLEAN) AS VALUES (1, 1, true), (1, 2, false), (2, 1, true)")
            .await
            .unwrap();
        ctx.sql("CREATE TABLE defs (tbl INT, num INT, expr TEXT) AS VALUES (1, 1, 'now()'), (1, 2, 'never read'), (2, 1, 'a')")
            .await
            .unwrap();
        ctx
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> datafusion::common::Result<Vec<String>> {
        let batches = ctx.sql(sql).await?.collect().await?;
        let text = arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
        Ok(text.lines().map(str::to_string).collect())
    }

    #[tokio::test]
    async fn correlated_subquery_with_an_outer_filter_answers_per_row() {
        let ctx = context().await;
        // The shape of SQLAlchemy's default-value column: outer filter, then keys.
        let out = rows(
            &ctx,
            "SELECT num, CASE WHEN hasdef THEN (SELECT expr FROM defs WHERE cols.hasdef AND defs.tbl = cols.tbl AND defs.num = cols.num) END AS def \
             FROM cols WHERE tbl = 1 ORDER BY num",
        )
        .await
        .unwrap();
        assert_eq!(
            out[3..5],
            ["| 1   | now() |".to_string(), "| 2   |       |".to_string()],
            "{out:#?}"
        );
    }

    #[tokio::test]
    async fn a_subquery_result_reading_outer_columns_is_null_without_a_row() {
        let ctx = context().await;
        ctx.sql("INSERT INTO cols VALUES (3, 1, false)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        // The shape of SQLAlchemy's identity options: the result mixes outer and inner.
        let out = rows(
            &ctx,
            "SELECT tbl, num, CASE WHEN num > 0 THEN (SELECT concat(cols.tbl, ':', expr) FROM defs WHERE cols.num > 0 AND defs.tbl = cols.tbl AND defs.num = cols.num) END AS r \
             FROM cols ORDER BY tbl, num",
        )
        .await
        .unwrap();
        let body: Vec<&str> = out[3..7].iter().map(String::as_str).collect();
        assert_eq!(
            body,
            [
                "| 1   | 1   | 1:now()      |",
                "| 1   | 2   | 1:never read |",
                "| 2   | 1   | 2:a          |",
                "| 3   | 1   |              |",
            ],
            "{out:#?}"
        );
    }

    #[tokio::test]
    async fn more_than_one_row_is_an_error_as_in_postgresql() {
        let ctx = context().await;
        ctx.sql("INSERT INTO defs VALUES (2, 1, 'b')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let error = rows(
            &ctx,
            "SELECT coalesce((SELECT expr FROM defs WHERE defs.tbl = cols.tbl AND defs.num = cols.num), '') FROM cols",
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("more than one row"), "{error}");
    }

    #[tokio::test]
    async fn an_uncorrelated_subquery_without_a_row_is_null() {
        let ctx = context().await;
        // pg_proc.oid is declared non-null; the lookup finds no row (pgjdbc's
        // `typinput = 'pg_catalog.array_in'::regproc`).
        let out = rows(
            &ctx,
            "SELECT tbl = (SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'no such function') IS NULL AS n FROM cols LIMIT 1",
        )
        .await
        .unwrap();
        assert_eq!(out[3], "| true |", "{out:#?}");
    }

    #[tokio::test]
    async fn pg_settings_lists_what_current_setting_answers() {
        let ctx = context().await;
        let out = rows(
            &ctx,
            "SELECT setting, current_setting(name) = setting AS same FROM pg_catalog.pg_settings WHERE name = 'max_index_keys'",
        )
        .await
        .unwrap();
        assert_eq!(out[3], "| 32      | true |", "{out:#?}");
    }

    #[tokio::test]
    async fn json_build_object_and_collation_visibility_are_callable() {
        let ctx = context().await;
        let out = rows(
            &ctx,
            "SELECT json_build_object('name', 'C', 'n', 1) AS j, pg_collation_is_visible(100) AS v",
        )
        .await
        .unwrap();
        assert!(out[3].contains(r#"{"name" : "C", "n" : 1}"#), "{out:#?}");
        assert!(out[3].contains("true"), "{out:#?}");
    }
}
