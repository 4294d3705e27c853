//! Result column names as PostgreSQL gives them: `count(*)` is `count`, `x::text` is
//! `x`, `1 + 2` is `?column?`. DataFusion names an unaliased select item after its
//! whole expression (`count(*)`, `sum(o.amount)`), which BI tools, pandas and ORMs
//! show to users and look columns up by.
//!
//! The rewrite works on the parsed statement, before it is planned: it aliases the
//! unaliased items of every SELECT list with the name PostgreSQL's `FigureColname`
//! (parser/parse_target.c) would give them. Column references and explicit aliases
//! are left alone (DataFusion already names them as PostgreSQL does). Every SELECT is
//! rewritten, not only the outermost: a derived table's or a CTE's column names are
//! visible through `*` and `s.count`. Of a set operation only the leftmost branch
//! names the result, as in PostgreSQL and DataFusion; the other branches are left as
//! written.
//!
//! PostgreSQL allows two result columns of the same name (`SELECT count(*),
//! count(x)` gives two `count`s; so do `SELECT id, id` and `SELECT 1 AS a, 2 AS a`);
//! DataFusion refuses a projection whose names repeat. An item whose name an earlier
//! item of the same SELECT list already has is therefore aliased with the name, a
//! mark and a number (unique for DataFusion), and [`postgres_column_name`] gives
//! PostgreSQL's name back where the wire protocol describes the result.

use datafusion::sql::sqlparser::ast::{
    DataType, Declare, Expr, Function, Ident, ObjectName, Query, Select, SelectItem, SetExpr,
    Statement, VisitMut, VisitorMut,
};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// Aliases the unaliased select items of every SELECT in `statement` with the names
/// PostgreSQL gives them (see the module documentation); statements without a query
/// are left unchanged. Call it on the parsed statement before planning it.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};
/// let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT count(*), 1 + 2 FROM t")?.remove(0);
/// ktable::sql::pg_compat::name_columns_like_postgres(&mut statement);
/// assert_eq!(
///     statement.to_string(),
///     r#"SELECT count(*) AS "count", 1 + 2 AS "?column?" FROM t"#
/// );
/// # Ok(()) }
/// ```
pub fn name_columns_like_postgres(statement: &mut Statement) {
    // Declared cursors (`DECLARE c CURSOR FOR SELECT ...`) name their rows too.
    if let Statement::Declare { stmts } = statement {
        for Declare { for_query, .. } in stmts.iter_mut() {
            if let Some(query) = for_query {
                let _ = query.visit(&mut NameSelectLists);
            }
        }
        return;
    }
    let _ = statement.visit(&mut NameSelectLists);
}

/// Visits every query of a statement and names the select list that names its rows.
struct NameSelectLists;

impl VisitorMut for NameSelectLists {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(select) = naming_select(&mut query.body) {
            name_select_list(select);
        }
        ControlFlow::Continue(())
    }
}

/// The SELECT whose list names a query's rows: the leftmost branch of a set operation.
fn naming_select(body: &mut SetExpr) -> Option<&mut Select> {
    match body {
        SetExpr::Select(select) => Some(select),
        SetExpr::SetOperation { left, .. } => naming_select(left),
        // A parenthesized query is visited on its own.
        _ => None,
    }
}

fn name_select_list(select: &mut Select) {
    // Names given so far, and how many items carry each.
    let mut taken: HashMap<String, usize> = HashMap::new();
    for item in select.projection.iter_mut() {
        let (expr, name, generated) = match item {
            SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone(), false),
            SelectItem::UnnamedExpr(expr) => match column_name(expr) {
                Some(name) => (expr, name, false),
                None => {
                    let name = postgres_name(expr).unwrap_or_else(|| "?column?".to_string());
                    (expr, name, true)
                }
            },
            _ => continue,
        };
        let seen = taken.entry(name.clone()).or_insert(0);
        *seen += 1;
        let alias = match *seen {
            1 if !generated => continue,
            1 => name,
            // A repeated name: unique for DataFusion, PostgreSQL's on the wire.
            n => format!("{name}{REPEATED_NAME_MARK}{n}"),
        };
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::with_quote('"', alias),
        };
    }
}

/// Separates a repeated result column name from the number that makes it unique
/// for DataFusion; [`postgres_column_name`] cuts it off. A control character, which
/// no identifier a client writes contains.
const REPEATED_NAME_MARK: char = '\u{1f}';

/// The name PostgreSQL gives a result column that the statement front end named
/// `name`: a name that repeats an earlier one in its select list (`SELECT count(*),
/// count(x)`) is made unique for DataFusion, which refuses repeated names, and is
/// given back as PostgreSQL's (`count`, `count`) here. The wire protocol sends
/// these names; an embedder that shows result columns to people may use it too.
///
/// ```
/// assert_eq!(ktable::sql::pg_compat::postgres_column_name("count"), "count");
/// assert_eq!(ktable::sql::pg_compat::postgres_column_name("count\u{1f}2"), "count");
/// ```
pub fn postgres_column_name(name: &str) -> &str {
    name.split(REPEATED_NAME_MARK).next().unwrap_or(name)
}

/// The name of a plain column reference, which DataFusion already uses.
fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.clone()),
        Expr::CompoundIdentifier(idents) => idents.last().map(|i| i.value.clone()),
        _ => None,
    }
}

/// PostgreSQL's name for an expression, or `None` where it says `?column?` (or where
/// an inner expression has no name of its own, which the caller turns into the same).
fn postgres_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => column_name(expr),
        Expr::Nested(inner) => postgres_name(inner),
        // `x::text` is `x`; `'1'::int` has no name of its own and takes the type's.
        Expr::Cast {
            expr, data_type, ..
        } => postgres_name(expr).or_else(|| Some(type_name(data_type))),
        Expr::Collate { expr, .. } => postgres_name(expr),
        Expr::Function(function) => Some(function_name(function)),
        // `CASE ... ELSE x END` is `x`; without a named ELSE, `case`.
        Expr::Case { else_result, .. } => else_result
            .as_deref()
            .and_then(postgres_name)
            .or_else(|| Some("case".to_string())),
        Expr::Exists { .. } => Some("exists".to_string()),
        // A scalar subquery is named after its one column.
        Expr::Subquery(query) => subquery_name(query),
        Expr::Array(_) => Some("array".to_string()),
        Expr::Tuple(_) => Some("row".to_string()),
        Expr::Extract { .. } => Some("extract".to_string()),
        Expr::Substring { .. } => Some("substring".to_string()),
        Expr::Position { .. } => Some("position".to_string()),
        Expr::Overlay { .. } => Some("overlay".to_string()),
        // PostgreSQL rewrites TRIM to btrim/ltrim/rtrim before naming it.
        Expr::Trim { trim_where, .. } => Some(
            match trim_where
                .as_ref()
                .map(|w| w.to_string().to_ascii_uppercase())
            {
                Some(w) if w == "LEADING" => "ltrim",
                Some(w) if w == "TRAILING" => "rtrim",
                _ => "btrim",
            }
            .to_string(),
        ),
        Expr::Ceil { .. } => Some("ceil".to_string()),
        Expr::Floor { .. } => Some("floor".to_string()),
        Expr::CompoundFieldAccess { root, .. } => postgres_name(root),
        _ => None,
    }
}

/// A function call is named after the function, without its schema.
fn function_name(function: &Function) -> String {
    last_part(&function.name)
}

fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.clone())
        .unwrap_or_else(|| name.to_string())
}

/// The name of a scalar subquery's one column, if it has one.
fn subquery_name(query: &Query) -> Option<String> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    match select.projection.as_slice() {
        [SelectItem::ExprWithAlias { alias, .. }] => Some(alias.value.clone()),
        [SelectItem::UnnamedExpr(expr)] => postgres_name(expr),
        _ => None,
    }
}

/// The name PostgreSQL's grammar gives a type written in a cast (`int` is `int4`).
fn type_name(data_type: &DataType) -> String {
    let name = match data_type {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4",
        DataType::BigInt(_) | DataType::Int8(_) => "int8",
        DataType::SmallInt(_) | DataType::Int2(_) => "int2",
        DataType::Boolean | DataType::Bool => "bool",
        DataType::Real | DataType::Float4 => "float4",
        DataType::DoublePrecision | DataType::Double(_) | DataType::Float8 => "float8",
        DataType::Numeric(_) | DataType::Decimal(_) | DataType::Dec(_) => "numeric",
        DataType::Varchar(_) | DataType::CharacterVarying(_) => "varchar",
        DataType::Char(_) | DataType::Character(_) => "bpchar",
        DataType::Text => "text",
        DataType::Date => "date",
        DataType::Timestamp(_, tz) => match tz {
            datafusion::sql::sqlparser::ast::TimezoneInfo::WithTimeZone
            | datafusion::sql::sqlparser::ast::TimezoneInfo::Tz => "timestamptz",
            _ => "timestamp",
        },
        DataType::Time(_, _) => "time",
        DataType::Interval { .. } => "interval",
        DataType::Bytea => "bytea",
        DataType::Uuid => "uuid",
        DataType::JSON => "json",
        DataType::JSONB => "jsonb",
        DataType::Custom(name, _) => return last_part(name),
        other => return other.to_string().to_ascii_lowercase(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (x INT, name TEXT, amount DOUBLE) AS VALUES (1, 'a', 1.5)")
            .await
            .unwrap();
        ctx
    }

    /// Parses, rewrites, plans, and returns the plan's output column names.
    async fn names(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        name_columns_like_postgres(&mut statement);
        let state = ctx.state();
        let plan = state
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                statement.clone(),
            )))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        plan.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[tokio::test]
    async fn aggregates_and_functions_are_named_after_the_function() {
        let ctx = context().await;
        assert_eq!(names(&ctx, "SELECT count(*) FROM t").await, ["count"]);
        assert_eq!(
            names(&ctx, "SELECT sum(o.amount), max(x), count(o.name) FROM t o").await,
            ["sum", "max", "count"]
        );
        assert_eq!(names(&ctx, "SELECT lower(name) FROM t").await, ["lower"]);
        // A schema-qualified function is named without its schema.
        let mut statement = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT pg_catalog.upper(name) FROM t",
        )
        .unwrap()
        .remove(0);
        name_columns_like_postgres(&mut statement);
        assert!(
            statement.to_string().contains(r#"AS "upper""#),
            "{statement}"
        );
    }

    #[tokio::test]
    async fn casts_take_their_operand_name_or_the_type_name() {
        let ctx = context().await;
        assert_eq!(
            names(
                &ctx,
                "SELECT x::text, CAST(amount AS int), '7'::int, CAST('a' AS varchar) FROM t"
            )
            .await,
            ["x", "amount", "int4", "varchar"]
        );
    }

    #[tokio::test]
    async fn columns_aliases_and_other_expressions() {
        let ctx = context().await;
        assert_eq!(
            names(&ctx, "SELECT t.x, name, x + 1 AS next, 1 + 2 FROM t").await,
            ["x", "name", "next", "?column?"]
        );
        assert_eq!(
            names(
                &ctx,
                "SELECT CASE WHEN x > 0 THEN 'p' END, CASE WHEN x > 0 THEN 1 ELSE x END FROM t"
            )
            .await,
            ["case", "x"]
        );
        assert_eq!(
            names(
                &ctx,
                "SELECT (SELECT max(x) FROM t), EXISTS (SELECT 1 FROM t)"
            )
            .await,
            ["max", "exists"]
        );
    }

    #[tokio::test]
    async fn repeated_names_are_postgres_names_once_the_mark_is_cut() {
        let ctx = context().await;
        // PostgreSQL says count, count; DataFusion refuses repeated names, so the
        // plan's names are unique and the wire's are PostgreSQL's.
        let wire = |names: Vec<String>| -> Vec<String> {
            names
                .iter()
                .map(|n| postgres_column_name(n).to_string())
                .collect()
        };
        let counts = names(&ctx, "SELECT count(*), count(x) FROM t").await;
        assert_ne!(counts[0], counts[1]);
        assert_eq!(wire(counts), ["count", "count"]);
        assert_eq!(
            wire(names(&ctx, "SELECT 1 + 1, 2 + 2").await),
            ["?column?", "?column?"]
        );
        assert_eq!(
            wire(
                names(
                    &ctx,
                    "SELECT name AS lower, lower(name), x, x, 1 AS x FROM t"
                )
                .await
            ),
            ["lower", "lower", "x", "x", "x"]
        );
        // Through a derived table too.
        assert_eq!(
            wire(names(&ctx, "SELECT * FROM (SELECT count(*), count(x) FROM t) s").await),
            ["count", "count"]
        );
    }

    #[tokio::test]
    async fn union_is_named_by_its_first_branch_and_subqueries_by_theirs() {
        let ctx = context().await;
        assert_eq!(
            names(
                &ctx,
                "SELECT count(*) FROM t UNION ALL SELECT sum(x) FROM t"
            )
            .await,
            ["count"]
        );
        assert_eq!(
            names(&ctx, "SELECT s.count FROM (SELECT count(*) FROM t) s").await,
            ["count"]
        );
        assert_eq!(
            names(&ctx, "WITH c AS (SELECT max(x) FROM t) SELECT * FROM c").await,
            ["max"]
        );
    }

    #[tokio::test]
    async fn declared_cursors_and_statements_without_queries() {
        let mut declare = Parser::parse_sql(
            &PostgreSqlDialect {},
            "DECLARE c CURSOR WITH HOLD FOR SELECT count(*) FROM t",
        )
        .unwrap()
        .remove(0);
        name_columns_like_postgres(&mut declare);
        assert!(
            declare.to_string().contains(r#"count(*) AS "count""#),
            "{declare}"
        );
        let mut set = Parser::parse_sql(&PostgreSqlDialect {}, "SET DateStyle = 'ISO'")
            .unwrap()
            .remove(0);
        let before = set.clone();
        name_columns_like_postgres(&mut set);
        assert_eq!(set, before);
    }
}
