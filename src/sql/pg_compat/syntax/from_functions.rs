//! Functions in FROM as PostgreSQL reads them. Grafana's table and column pickers
//! find the search path with
//! `FROM generate_series(...) AS i, string_to_array(current_setting('search_path'), ',') s`
//! and then read `s[i]`.
//!
//! In PostgreSQL any function may stand in FROM: one that returns a single value
//! (not a row type) gives a relation of one column named after the alias, or after
//! the function without one. DataFusion takes only its registered table functions
//! there, and names `generate_series`'s column `value`. So:
//!
//! * `generate_series(...) AS i` (a table function of one column) gets the column
//!   name PostgreSQL gives it: `AS i(i)`. Without an alias PostgreSQL names the
//!   column `generate_series`; there it keeps DataFusion's `value`, which ktable's
//!   users already select;
//! * any other function that is not a table function becomes the derived table
//!   `(SELECT f(...) AS i) AS i`: one row for a scalar function, a row per element
//!   for `unnest` (and for `generate_subscripts`, which the expression rewrites make
//!   an `unnest`), as in PostgreSQL.
//!
//! Functions with `WITH ORDINALITY` or with several column aliases (a row type) are
//! left to DataFusion.

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArgumentList, FunctionArguments, Ident, ObjectName, Query, SelectItem,
    SetExpr, Statement, TableAlias, TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Table functions known to return one column, which PostgreSQL names after the alias.
const ONE_COLUMN_TABLE_FUNCTIONS: &[&str] = &["generate_series"];

pub(super) fn rewrite(statement: &mut Statement, is_table_function: &dyn Fn(&str) -> bool) {
    let _ = statement.visit(&mut FromFunctions { is_table_function });
}

struct FromFunctions<'a> {
    is_table_function: &'a dyn Fn(&str) -> bool,
}

impl VisitorMut for FromFunctions<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality: false,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if alias.as_ref().is_some_and(|a| a.columns.len() > 1) || args.settings.is_some() {
            return ControlFlow::Continue(());
        }
        let Some(function) = name.0.last().and_then(|p| p.as_ident()).cloned() else {
            return ControlFlow::Continue(());
        };
        // PostgreSQL's names: the column alias, else the alias, else the function.
        let relation = alias
            .as_ref()
            .map_or_else(|| function.clone(), |a| a.name.clone());
        let column = alias
            .as_ref()
            .and_then(|a| a.columns.first())
            .map_or_else(|| relation.clone(), |c| c.name.clone());
        if (self.is_table_function)(&function.value.to_ascii_lowercase()) {
            // DataFusion looks table functions up by their bare name
            // (`pg_catalog.generate_series` in pgjdbc's key queries).
            *name = ObjectName::from(vec![function.clone()]);
            // Without an alias the column keeps DataFusion's name, `value`, which
            // ktable's users and tests already select.
            if alias.is_some()
                && ONE_COLUMN_TABLE_FUNCTIONS
                    .iter()
                    .any(|f| function.value.eq_ignore_ascii_case(f))
            {
                *alias = Some(named(relation, Some(column)));
            }
            return ControlFlow::Continue(());
        }
        // Unqualified: DataFusion resolves functions by their bare name.
        let call = Expr::Function(Function {
            name: ObjectName::from(vec![function.clone()]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: args.args.clone(),
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        });
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(select_one(call, column)),
            alias: Some(named(relation, None)),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}

/// `AS relation` or `AS relation(column)`.
fn named(relation: Ident, column: Option<Ident>) -> TableAlias {
    TableAlias {
        explicit: true,
        name: relation,
        columns: column
            .map(|c| TableAliasColumnDef {
                name: c,
                data_type: None,
            })
            .into_iter()
            .collect(),
        at: None,
    }
}

/// `SELECT expr AS column`, with no FROM.
pub(super) fn select_one(expr: Expr, column: Ident) -> Query {
    let mut query = match Parser::parse_sql(&PostgreSqlDialect {}, "SELECT NULL") {
        Ok(mut statements) => match statements.pop() {
            Some(Statement::Query(query)) => *query,
            _ => unreachable!("SELECT NULL is a query"),
        },
        Err(_) => unreachable!("SELECT NULL parses"),
    };
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::ExprWithAlias {
            expr,
            alias: column,
        }];
    }
    query
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rewritten, run};

    #[tokio::test]
    async fn functions_in_from_answer_as_in_postgresql() {
        // Grafana's search-path subquery.
        assert_eq!(
            run("SELECT trim(s[i]) AS p FROM generate_series(1, array_upper(string_to_array('a, b', ','), 1)) AS i, string_to_array('a, b', ',') s ORDER BY i").await,
            ["a", "b"]
        );
        assert_eq!(
            run("SELECT value FROM generate_series(1, 2)").await,
            ["1", "2"]
        );
    }

    #[test]
    fn a_one_column_table_function_names_its_column_after_the_alias() {
        assert_eq!(
            rewritten("SELECT i FROM generate_series(1, 3) AS i"),
            "SELECT i FROM generate_series(1, 3) AS i (i)"
        );
        assert_eq!(
            rewritten("SELECT n FROM pg_catalog.generate_series(1, 3) AS s(n)"),
            "SELECT n FROM generate_series(1, 3) AS s (n)"
        );
    }

    #[test]
    fn a_scalar_function_in_from_is_a_one_row_relation() {
        assert_eq!(
            rewritten("SELECT s[1] FROM string_to_array('a,b', ',') s"),
            "SELECT s[1] FROM (SELECT string_to_array('a,b', ',') AS s) AS s"
        );
        assert_eq!(
            rewritten("SELECT x FROM pg_catalog.unnest(k) x"),
            "SELECT x FROM (SELECT unnest(k) AS x) AS x"
        );
    }
}
