//! `x IN (subquery)` outside a filter: Grafana's table picker computes whether a
//! schema is on the search path in its select list and its ORDER BY
//! (`CASE WHEN quote_ident(table_schema) IN (SELECT ... ) THEN ...`). DataFusion runs
//! an IN subquery only as a filter (a semi join); elsewhere its physical planner
//! refuses it.
//!
//! There it becomes a membership test of the subquery's rows gathered in an array:
//! `coalesce(array_has(ARRAY(subquery), x), false)`, a scalar subquery DataFusion
//! runs anywhere. One difference remains: PostgreSQL's `x IN (...)` is NULL, not
//! false, when `x` is NULL or when no row matches and one is NULL. In a CASE, a
//! filter or a sort key NULL and false act alike.

use super::array_constructor::aggregated;
use super::call;
use datafusion::sql::sqlparser::ast::{
    Expr, OrderByKind, Query, SelectItem, SetExpr, UnaryOperator, Value, VisitorMut,
};
use std::ops::ControlFlow;

/// Rewrites the IN subqueries of every query's select list and ORDER BY.
pub(super) struct OutsideFilters;

impl VisitorMut for OutsideFilters {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in select.projection.iter_mut() {
                if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item
                {
                    rewrite_outside_subqueries(expr);
                }
            }
        }
        if let Some(order_by) = query.order_by.as_mut() {
            if let OrderByKind::Expressions(items) = &mut order_by.kind {
                for item in items.iter_mut() {
                    rewrite_outside_subqueries(&mut item.expr);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites `expr`'s IN subqueries, not those of its subqueries (each query's own
/// list is visited on its own).
fn rewrite_outside_subqueries(expr: &mut Expr) {
    super::rewrite_outside_subqueries(expr, rewrite_in_subquery);
}

/// `x [NOT] IN (subquery)` as an array membership; other expressions unchanged.
fn rewrite_in_subquery(expr: &mut Expr) {
    let Expr::InSubquery {
        expr: value,
        subquery,
        negated,
    } = expr
    else {
        return;
    };
    let member = call(
        "coalesce",
        vec![
            call("array_has", vec![aggregated(subquery), (**value).clone()]),
            Expr::value(Value::Boolean(false)),
        ],
    );
    *expr = if *negated {
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: Box::new(Expr::Nested(Box::new(member))),
        }
    } else {
        member
    };
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rewritten, run};

    #[test]
    fn an_in_subquery_in_a_select_list_is_an_array_membership() {
        assert_eq!(
            rewritten("SELECT CASE WHEN a IN (SELECT b FROM u) THEN 1 END FROM t WHERE a IN (SELECT b FROM u)"),
            "SELECT CASE WHEN coalesce(array_has((SELECT array_agg(__array_element) AS array FROM (SELECT b FROM u) AS __array (__array_element)), a), false) THEN 1 END FROM t WHERE a IN (SELECT b FROM u)"
        );
    }

    #[tokio::test]
    async fn in_subqueries_outside_filters_answer_as_in_postgresql() {
        assert_eq!(
            run("SELECT name, name IN (SELECT 'pg_x') AS i, name NOT IN (SELECT 'pg_x') AS n FROM t ORDER BY name IN (SELECT 'pgax'), name").await,
            ["pg_x,true,false", "pgax,false,true"]
        );
    }
}
