//! `ARRAY(subquery)`, PostgreSQL's array of a subquery's rows, which DataFusion
//! parses as a call of an unknown function `array`. psql's `\d+` writes
//! `array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x)`.
//!
//! Two forms:
//! * over the elements of one array, `ARRAY(SELECT e FROM unnest(a) AS x [WHERE p])`,
//!   which is usually correlated (psql's reads the outer row's `reloptions`) and so
//!   cannot be a subquery DataFusion decorrelates: it becomes DataFusion's lambda
//!   functions over the array, `array_transform(array_filter(a, x -> p), x -> e)`;
//! * a plain one-column `SELECT e FROM ... [WHERE p] [ORDER BY o]`: the same query
//!   aggregating its rows, `(SELECT array_agg(e ORDER BY o) FROM ... WHERE p)`, so that
//!   a correlated `p` (psql's `\du`: `WHERE m.member = r.oid`) stays a filter that
//!   DataFusion decorrelates as it does `(SELECT count(*) ... WHERE ...)`;
//! * any other subquery: `(SELECT array_agg(v) FROM (subquery) AS __array(v))`.
//!
//! Either is wrapped in `coalesce(..., make_array())`: PostgreSQL's array of no rows
//! is empty (`{}`), where array_agg of no row and the transform of a NULL array are
//! NULL.

use super::{call, function_name_is};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments, GroupByExpr,
    Ident, LambdaFunction, LambdaFunctionParameter, LambdaSyntax, OneOrManyWithParens, OrderByKind,
    Query, SelectItem, SetExpr, TableAlias, TableAliasColumnDef, TableFactor, Value, VisitMut,
    VisitorMut,
};
use std::ops::ControlFlow;

/// The column the general form aggregates.
const COLUMN: &str = "__array_element";

pub(super) fn rewrite(expr: &mut Expr) {
    let Expr::Function(function) = expr else {
        return;
    };
    if !function_name_is(&function.name, "array") || function.name.0.len() != 1 {
        return;
    }
    let FunctionArguments::Subquery(query) = &function.args else {
        return;
    };
    let array = over_one_array(query)
        .or_else(|| aggregated_in_place(query))
        .unwrap_or_else(|| aggregated(query));
    // PostgreSQL's array of no rows is empty, where array_agg of no rows (and the
    // transform of a NULL array) is NULL.
    *expr = call("coalesce", vec![array, call("make_array", vec![])]);
}

/// `array_transform(array_filter(a, x -> p), x -> e)` for a subquery over the
/// elements of the array `a`, `None` for any other subquery.
fn over_one_array(query: &Query) -> Option<Expr> {
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    let ([item], [from]) = (select.projection.as_slice(), select.from.as_slice()) else {
        return None;
    };
    if !plain || !from.joins.is_empty() {
        return None;
    }
    let (array, alias) = unnested_array(&from.relation)?;
    // The element's name: the column alias, else the alias, else `unnest`.
    let relation = alias.map(|a| a.name.clone());
    let element = alias
        .and_then(|a| a.columns.first())
        .map(|c| c.name.clone())
        .or_else(|| relation.clone())
        .unwrap_or_else(|| Ident::new("unnest"));
    let element_of = |e: &Expr| {
        let mut e = e.clone();
        let _ = e.visit(&mut ElementReferences {
            relation: relation.as_ref(),
            element: &element,
        });
        e
    };
    let result = match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => element_of(e),
        _ => return None,
    };
    let mut array = array;
    if let Some(condition) = &select.selection {
        array = call(
            "array_filter",
            vec![array, lambda(&element, element_of(condition))],
        );
    }
    Some(match result {
        Expr::Identifier(ident) if ident.value == element.value => array,
        result => call("array_transform", vec![array, lambda(&element, result)]),
    })
}

/// `(SELECT array_agg(e ORDER BY o) FROM ... WHERE p)` for a plain one-column
/// `SELECT e FROM ... WHERE p ORDER BY o` whose column is not an aggregate itself;
/// `None` for any other query.
fn aggregated_in_place(query: &Query) -> Option<Expr> {
    if query.with.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && select.qualify.is_none()
        && select.named_window.is_empty()
        && !select.from.is_empty()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    let ([item], true) = (select.projection.as_slice(), plain) else {
        return None;
    };
    let (element, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return None,
    };
    if holds_aggregate(element) {
        return None;
    }
    // The ordering of the rows orders the elements; `ORDER BY 1` and the column's
    // alias name the element.
    let mut order = Vec::new();
    if let Some(order_by) = &query.order_by {
        let OrderByKind::Expressions(exprs) = &order_by.kind else {
            return None;
        };
        for by in exprs {
            let mut by = by.clone();
            let names_element = match &by.expr {
                Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if n == "1"),
                Expr::Identifier(ident) => alias.is_some_and(|a| a.value == ident.value),
                _ => false,
            };
            if names_element {
                by.expr = element.clone();
            } else if matches!(&by.expr, Expr::Value(_)) {
                return None;
            }
            order.push(by);
        }
    }
    let mut aggregate = call("array_agg", vec![element.clone()]);
    if let (Expr::Function(function), false) = (&mut aggregate, order.is_empty()) {
        if let FunctionArguments::List(list) = &mut function.args {
            list.clauses.push(FunctionArgumentClause::OrderBy(order));
        }
    }
    let mut select = select.clone();
    select.projection = vec![SelectItem::ExprWithAlias {
        expr: aggregate,
        alias: Ident::new("array"),
    }];
    let mut query = query.clone();
    query.order_by = None;
    query.body = Box::new(SetExpr::Select(select));
    Some(Expr::Subquery(Box::new(query)))
}

/// Whether `expr` calls an aggregate or window function (which `array_agg` cannot
/// take as its argument): the general form keeps such a query whole.
fn holds_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "json_agg",
        "jsonb_agg",
        "json_object_agg",
        "stddev",
        "variance",
        "first_value",
        "last_value",
    ];
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(function) = e {
            let aggregate = AGGREGATES
                .iter()
                .any(|name| function_name_is(&function.name, name));
            if aggregate || function.over.is_some() || function.filter.is_some() {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

/// The array a FROM item unnests, and the item's alias.
fn unnested_array(relation: &TableFactor) -> Option<(Expr, Option<&TableAlias>)> {
    match relation {
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } => match array_exprs.as_slice() {
            [array] => Some((array.clone(), alias.as_ref())),
            _ => None,
        },
        TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality: false,
            ..
        } if function_name_is(name, "unnest") => match args.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(array))] => {
                Some((array.clone(), alias.as_ref()))
            }
            _ => None,
        },
        _ => None,
    }
    .filter(|(_, alias)| alias.is_none_or(|a| a.columns.len() <= 1))
}

fn lambda(parameter: &Ident, body: Expr) -> Expr {
    Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::One(LambdaFunctionParameter {
            name: parameter.clone(),
            data_type: None,
        }),
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    })
}

/// Makes `relation.element` the lambda's parameter `element`.
struct ElementReferences<'a> {
    relation: Option<&'a Ident>,
    element: &'a Ident,
}

impl VisitorMut for ElementReferences<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = expr {
            if let [relation, column] = parts.as_slice() {
                if Some(&relation.value) == self.relation.map(|r| &r.value)
                    && column.value == self.element.value
                {
                    *expr = Expr::Identifier(self.element.clone());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `(SELECT array_agg(v) FROM (query) AS __array(v))`.
pub(super) fn aggregated(query: &Query) -> Expr {
    let column = Ident::new(COLUMN);
    let mut outer = super::from_functions::select_one(
        call("array_agg", vec![Expr::Identifier(column.clone())]),
        Ident::new("array"),
    );
    if let SetExpr::Select(select) = outer.body.as_mut() {
        select.from = vec![datafusion::sql::sqlparser::ast::TableWithJoins {
            relation: TableFactor::Derived {
                lateral: false,
                subquery: Box::new(query.clone()),
                alias: Some(TableAlias {
                    explicit: true,
                    name: Ident::new("__array"),
                    columns: vec![TableAliasColumnDef {
                        name: column,
                        data_type: None,
                    }],
                    at: None,
                }),
                sample: None,
            },
            joins: vec![],
        }];
    }
    Expr::Subquery(Box::new(outer))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rewritten, run};

    #[tokio::test]
    async fn array_constructors_answer_as_in_postgresql() {
        assert_eq!(
            run("SELECT array_to_string(ARRAY(SELECT 'x.' || e FROM unnest(k) e WHERE e > 10), ',') AS a FROM t WHERE k IS NOT NULL").await,
            ["x.20"]
        );
        assert_eq!(
            run("SELECT array_to_string(ARRAY(SELECT name FROM t ORDER BY name), ',') AS a").await,
            ["pg_x,pgax"]
        );
    }

    #[tokio::test]
    async fn an_array_of_no_rows_is_empty_not_null() {
        assert_eq!(
            run("SELECT cardinality(ARRAY(SELECT name FROM t WHERE name = 'none')) AS n").await,
            ["0"]
        );
        assert_eq!(
            run("SELECT cardinality(ARRAY(SELECT e FROM unnest(k) e WHERE e > 10)) AS n FROM t WHERE k IS NULL").await,
            ["0"]
        );
        assert_eq!(
            run("SELECT cardinality(ARRAY(SELECT e * 2 FROM unnest(k) e)) AS n FROM t WHERE k IS NULL").await,
            ["0"]
        );
    }

    #[test]
    fn an_array_of_the_elements_of_an_array_is_a_transform() {
        assert_eq!(
            rewritten(
                "SELECT array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x) FROM tc"
            ),
            "SELECT coalesce(array_transform(tc.reloptions, x -> 'toast.' || x), make_array()) FROM tc"
        );
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT s.a FROM unnest(k) AS s(a) WHERE s.a > 1) FROM t"),
            "SELECT coalesce(array_filter(k, a -> a > 1), make_array()) FROM t"
        );
    }

    #[test]
    fn an_array_of_a_plain_select_aggregates_in_place() {
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT name FROM t ORDER BY 1)"),
            "SELECT coalesce((SELECT array_agg(name ORDER BY name) AS array FROM t), make_array())"
        );
    }

    #[test]
    fn an_array_of_any_other_subquery_aggregates_its_rows() {
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT DISTINCT name FROM t)"),
            "SELECT coalesce((SELECT array_agg(__array_element) AS array FROM (SELECT DISTINCT name FROM t) AS __array (__array_element)), make_array())"
        );
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT count(*) FROM t)"),
            "SELECT coalesce((SELECT array_agg(__array_element) AS array FROM (SELECT count(*) FROM t) AS __array (__array_element)), make_array())"
        );
    }

    /// psql's `\du` lists each role's memberships with a correlated `ARRAY(...)`.
    #[tokio::test]
    async fn a_correlated_array_subquery_answers_per_row() {
        assert_eq!(
            run("SELECT o.name, array_to_string(ARRAY(SELECT u.name || '!' AS n FROM t u JOIN t w ON u.name = w.name WHERE u.name = o.name ORDER BY n DESC), ',') AS a FROM t o ORDER BY 1").await,
            ["pg_x,pg_x!", "pgax,pgax!"]
        );
        assert_eq!(
            run("SELECT o.name, cardinality(ARRAY(SELECT u.name FROM t u WHERE u.name = o.name AND u.k IS NULL)) AS a FROM t o ORDER BY 1").await,
            ["pg_x,0", "pgax,1"]
        );
    }
}
