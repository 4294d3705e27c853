//! PostgreSQL syntax that DataFusion plans differently or not at all, rewritten on the
//! parsed statement (after datafusion-pg-catalog's own rewrites, before planning)
//! into what DataFusion plans with PostgreSQL's answer. Each rewrite is general, not
//! tied to one client's query text; the clients whose catalog queries need it are
//! named beside it:
//!
//! * `user`, the keyword, as the current user's name (Grafana's search path).
//! * `(expr).field`: field access on a composite value (pgjdbc's `getPrimaryKeys`
//!   and `getIndexInfo`: `(information_schema._pg_expandarray(i.indkey)).n`).
//!   DataFusion's planner takes only `expr['field']`, which means the same.
//! * `_pg_expandarray(a)`, a set-returning function in PostgreSQL, → `unnest` of the
//!   list of rows our `_pg_expandarray` gives (see `functions.rs`): a row per element,
//!   zipped with the other calls in the select list as PostgreSQL does.
//! * `generate_subscripts(array, dim)` in an expression, a set-returning function
//!   DataFusion lacks (SQLAlchemy's key reflection): the subscripts as a series,
//!   unnested, which zips with an `unnest` of the same array beside it as
//!   PostgreSQL's set-returning functions in one select list do.
//! * `LIKE pattern ESCAPE 'c'` with an escape character other than the backslash
//!   (SQLAlchemy 2's `get_schema_names`): DataFusion knows only the backslash, so the
//!   pattern is translated with `like_escape(pattern, 'c')`, PostgreSQL's own
//!   function for that.
//! * functions in FROM ([`from_functions`]), `ARRAY(subquery)`
//!   ([`array_constructor`]), `x IN (subquery)` outside a filter ([`in_subquery`])
//!   and casts of computed names to `regclass` in a select
//!   list ([`regclass`]): in their own files.

mod array_constructor;
mod from_functions;
mod in_subquery;
mod regclass;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, Query, Statement, Subscript, Value, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// Rewrites `statement` as the module documentation says. `is_table_function` tells
/// whether a name in FROM is a table function of the context the statement will be
/// planned in.
pub(super) fn rewrite(statement: &mut Statement, is_table_function: &dyn Fn(&str) -> bool) {
    // `ARRAY(SELECT ... FROM unnest(a) x)` first, while its FROM is as written.
    let _ = statement.visit(&mut ArrayConstructors);
    // Then functions in FROM: they become select lists the expression rewrites see.
    from_functions::rewrite(statement, is_table_function);
    let _ = statement.visit(&mut Expressions);
    let _ = statement.visit(&mut in_subquery::OutsideFilters);
    regclass::rewrite(statement);
}

/// `ARRAY(subquery)`, outermost first (see [`array_constructor`]).
struct ArrayConstructors;

impl VisitorMut for ArrayConstructors {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        array_constructor::rewrite(expr);
        ControlFlow::Continue(())
    }
}

/// The expression rewrites, bottom up, so that an inner rewrite is seen by an outer.
struct Expressions;

impl VisitorMut for Expressions {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        user_keyword(expr);
        expand_array(expr);
        field_access(expr);
        generate_subscripts(expr);
        like_escape(expr);
        ControlFlow::Continue(())
    }
}

/// `user` (unquoted), PostgreSQL's keyword for the current user (Grafana's search
/// path: `CASE WHEN trim(s[i]) = '"$user"' THEN user ...`), → `session_user`, as
/// datafusion-pg-catalog already spells `current_user`. A column called "user" must
/// be quoted in PostgreSQL, so no column is taken for the keyword.
fn user_keyword(expr: &mut Expr) {
    let is_user = match expr {
        Expr::Identifier(ident) => {
            ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("user")
        }
        // The parser reads the keyword as a call without parentheses.
        Expr::Function(function) => {
            matches!(function.args, FunctionArguments::None)
                && function.name.0.len() == 1
                && function_name_is(&function.name, "user")
        }
        _ => false,
    };
    if is_user {
        let mut session_user = call("session_user", vec![]);
        if let Expr::Function(function) = &mut session_user {
            function.args = FunctionArguments::None;
        }
        *expr = session_user;
    }
}

/// `_pg_expandarray(a)` → `unnest(_pg_expandarray(a))`.
fn expand_array(expr: &mut Expr) {
    if call_args(expr, "_pg_expandarray").is_some() {
        *expr = call("unnest", vec![expr.clone()]);
    }
}

/// `(expr).name` → `(expr)['name']`. After a bare name (`t.a[1]` is parsed as `t`,
/// `.a`, `[1]`) the dots name a column, which DataFusion resolves itself.
fn field_access(expr: &mut Expr) {
    let Expr::CompoundFieldAccess { root, access_chain } = expr else {
        return;
    };
    if matches!(
        root.as_ref(),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_)
    ) {
        return;
    }
    for access in access_chain.iter_mut() {
        if let AccessExpr::Dot(Expr::Identifier(field)) = access {
            *access = AccessExpr::Subscript(Subscript::Index {
                index: Expr::value(Value::SingleQuotedString(field.value.clone())),
            });
        }
    }
}

/// `generate_subscripts(a, dim)` → `unnest(generate_series(array_lower(a, dim),
/// array_upper(a, dim)))`; with `reverse` true, the series runs downwards. A NULL
/// array has no subscripts, as in PostgreSQL: the series is NULL, which unnests to
/// no row.
fn generate_subscripts(expr: &mut Expr) {
    let Some(args) = call_args(expr, "generate_subscripts") else {
        return;
    };
    let (array, dim, reverse) = match args.as_slice() {
        [array, dim] => (array.clone(), dim.clone(), None),
        [array, dim, reverse] => (array.clone(), dim.clone(), Some(reverse.clone())),
        _ => return,
    };
    let lower = call("array_lower", vec![array.clone(), dim.clone()]);
    let upper = call("array_upper", vec![array, dim]);
    let series = match reverse {
        None => call("generate_series", vec![lower, upper]),
        Some(reverse) => Expr::Case {
            case_token: AttachedToken::empty(),
            end_token: AttachedToken::empty(),
            operand: None,
            conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
                condition: reverse,
                result: call(
                    "generate_series",
                    vec![upper.clone(), lower.clone(), number("-1")],
                ),
            }],
            else_result: Some(Box::new(call("generate_series", vec![lower, upper]))),
        },
    };
    *expr = call("unnest", vec![series]);
}

/// `x LIKE p ESCAPE 'c'` → `x LIKE like_escape(p, 'c')` (and the same for `ILIKE`)
/// when `c` is not the backslash, DataFusion's only escape character.
fn like_escape(expr: &mut Expr) {
    let (Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = expr
    else {
        return;
    };
    let Some(escape) = escape_char.as_ref() else {
        return;
    };
    let escape = match &escape.value {
        Value::SingleQuotedString(c) if c != "\\" => c.clone(),
        _ => return,
    };
    let translated = call(
        "like_escape",
        vec![
            (**pattern).clone(),
            Expr::value(Value::SingleQuotedString(escape)),
        ],
    );
    **pattern = translated;
    *escape_char = None;
}

/// The arguments of a call of the function `name` (schema qualifier ignored), if
/// `expr` is one with plain arguments.
fn call_args(expr: &Expr, name: &str) -> Option<Vec<Expr>> {
    let Expr::Function(function) = expr else {
        return None;
    };
    if !function_name_is(&function.name, name) {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Whether `name` is the function `expected` (`pg_catalog.f` and `f` alike).
fn function_name_is(name: &ObjectName, expected: &str) -> bool {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .is_some_and(|ident| ident.value.eq_ignore_ascii_case(expected))
}

/// A call of `name` with `args`.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn number(digits: &str) -> Expr {
    Expr::value(Value::Number(digits.to_string(), false))
}

/// Applies `rewrite` to every expression of `expr` (inner ones first) that is not
/// inside a subquery: each query's own expressions are rewritten where that query
/// is visited, and some rewrites only apply to the outermost query.
fn rewrite_outside_subqueries(expr: &mut Expr, rewrite: impl FnMut(&mut Expr)) {
    let _ = expr.visit(&mut OutsideSubqueries { depth: 0, rewrite });
}

struct OutsideSubqueries<F> {
    depth: usize,
    rewrite: F,
}

impl<F: FnMut(&mut Expr)> VisitorMut for OutsideSubqueries<F> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            (self.rewrite)(expr);
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    pub(super) fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut statement, &|name| name == "generate_series");
        statement.to_string()
    }

    /// The rows of `sql`, rewritten and run on a context with pg_compat installed,
    /// as text, one line per row.
    pub(super) async fn run(sql: &str) -> Vec<String> {
        let ctx = datafusion::prelude::SessionContext::new();
        crate::sql::pg_compat::install(&ctx).unwrap();
        ctx.sql("CREATE TABLE t AS SELECT * FROM (VALUES (make_array(10, 20), 'pg_x'), (NULL, 'pgax')) AS v(k, name)")
            .await
            .unwrap();
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let state = ctx.state();
        rewrite(&mut statement, &|name| {
            state.table_functions().contains_key(name)
        });
        let plan = state
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                statement.clone(),
            )))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        // The rows, without the table's borders and header.
        lines[3..lines.len() - 1]
            .iter()
            .map(|l| {
                l.split('|')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[tokio::test]
    async fn rewritten_statements_answer_as_postgresql_does() {
        assert_eq!(
            run("SELECT unnest(k) AS v, generate_subscripts(k, 1) AS i FROM t WHERE k IS NOT NULL")
                .await,
            ["10,1", "20,2"]
        );
        assert_eq!(
            run("SELECT name FROM t WHERE name LIKE 'pg/_%' ESCAPE '/'").await,
            ["pg_x"]
        );
        assert_eq!(run("SELECT (named_struct('n', 7)).n AS n").await, ["7"]);
        // A row per element, none for a NULL array; calls in one select list zip.
        assert_eq!(
            run("SELECT name, (_pg_expandarray(k)).x AS x, (_pg_expandarray(k)).n AS n FROM t")
                .await,
            ["pg_x,10,1", "pg_x,20,2"]
        );
        assert_eq!(run("SELECT user = session_user AS same").await, ["true"]);
    }

    #[test]
    fn field_access_on_a_composite_becomes_a_named_subscript() {
        assert_eq!(
            rewritten("SELECT (f(x)).n, (r.keys).x FROM t AS r"),
            "SELECT (f(x))['n'], (r.keys)['x'] FROM t AS r"
        );
        // A qualified column with a subscript is a column.
        assert_eq!(
            rewritten("SELECT tmp.opts[tmp.n - 1] FROM tmp"),
            "SELECT tmp.opts[tmp.n - 1] FROM tmp"
        );
    }

    #[test]
    fn generate_subscripts_becomes_an_unnested_series() {
        assert_eq!(
            rewritten("SELECT unnest(k), generate_subscripts(k, 1) FROM t"),
            "SELECT unnest(k), unnest(generate_series(array_lower(k, 1), array_upper(k, 1))) FROM t"
        );
    }

    #[test]
    fn like_with_another_escape_character_translates_its_pattern() {
        assert_eq!(
            rewritten("SELECT 1 WHERE a NOT LIKE $1 || '%' ESCAPE '/'"),
            "SELECT 1 WHERE a NOT LIKE like_escape($1 || '%', '/')"
        );
        assert_eq!(
            rewritten(r"SELECT 1 WHERE a LIKE 'x\_%' ESCAPE '\'"),
            r"SELECT 1 WHERE a LIKE 'x\_%' ESCAPE '\'"
        );
    }
}
