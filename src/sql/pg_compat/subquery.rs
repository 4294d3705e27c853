//! Correlated scalar subqueries that are not aggregated, as driver catalog queries
//! write them: SQLAlchemy's column reflection reads a column's default, identity and
//! collation with `(SELECT x FROM pg_attrdef WHERE outer.atthasdef AND adrelid =
//! outer.attrelid ...)`. PostgreSQL runs these and fails only if one returns more than
//! one row; DataFusion refuses to plan them ("Correlated scalar subquery must be
//! aggregated"), and cannot decorrelate a filter on outer columns alone.
//!
//! This analyzer rule rewrites only subqueries DataFusion would refuse, so it turns
//! planning errors into answers and changes no query that already ran:
//! `(SELECT x FROM t WHERE outer.p AND q)` becomes
//! `CASE WHEN outer.p THEN (SELECT single_row(x) FROM t WHERE q) END`, where
//! `single_row` yields the one value, NULL for no row, and PostgreSQL's error for
//! more than one. One difference remains: DataFusion evaluates the subquery as a join
//! with its rows grouped by the correlated columns, so the error is raised when any
//! such group has two rows, even one that no outer row (or only one whose `outer.p`
//! is false) asks for. PostgreSQL would raise it only for a row that reads it. An
//! error where PostgreSQL answers is the safe side of that difference: the catalog
//! tables these queries read are keyed, so their groups have one row.
//!
//! An uncorrelated subquery is left to DataFusion, with one exception: DataFusion
//! declares a scalar subquery's result non-null when the subquery's column is, though
//! a subquery without a row gives NULL, and the batch holding that NULL is then
//! refused ("declared as non-nullable but contains null values": pgjdbc's
//! `getTypeInfo` compares `typinput` with a `::regproc` lookup that finds no row).
//! Such a subquery, unless it is aggregated already, is aggregated with `single_row`
//! too, whose result may be NULL.
//!
//! DataFusion cannot decorrelate a subquery whose *result* reads outer columns either
//! (SQLAlchemy's identity options: `json_build_object('always', outer.attidentity =
//! 'a', 'start', seqstart, ...)`). There the subquery returns the inner columns the
//! result reads, packed in one struct, computed in a projection below the outer one,
//! and the result is built outside: `CASE WHEN row IS NOT NULL THEN f(outer.x,
//! row.c0, ...) END`, NULL when the subquery has no row, as in PostgreSQL.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{plan_err, Column, DFSchema, Result};
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::{conjunction, merge_schema, split_conjunction_owned};
use datafusion::logical_expr::{
    lit, when, AggregateUDF, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Projection, Subquery,
};
use datafusion::optimizer::AnalyzerRule;
use std::sync::Arc;

/// Prefix of the columns that carry a packed subquery row below a projection.
const PACKED_ROW: &str = "__ktable_single_row_";

/// The rule; `single_row` is the aggregate from [`super::single_row`].
#[derive(Debug)]
pub(super) struct SingleRowSubqueries {
    single_row: Arc<AggregateUDF>,
}

impl SingleRowSubqueries {
    pub(super) fn new(single_row: Arc<AggregateUDF>) -> Self {
        Self { single_row }
    }

    /// Rewrites the scalar subqueries in the expressions of one plan node. A rewrite
    /// that cannot be built leaves the node to DataFusion, which then reports why it
    /// cannot run it.
    fn rewrite_node(&self, plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        let original = plan.clone();
        match self.try_rewrite_node(plan) {
            Ok(rewritten) => Ok(rewritten),
            Err(_) => Ok(Transformed::no(original)),
        }
    }

    fn try_rewrite_node(&self, plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        let outer = merge_schema(&plan.inputs());
        let in_projection = matches!(plan, LogicalPlan::Projection(_));
        // Packed subquery rows to compute below this projection, aliased.
        let mut packed: Vec<Expr> = Vec::new();
        let names = NamePreserver::new(&plan);
        let rewritten = plan.map_expressions(|expr| {
            let name = names.save(&expr);
            Ok(expr
                .transform_up(|e| {
                    let Expr::ScalarSubquery(subquery) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    let packed_rows = in_projection.then_some(&mut packed);
                    Ok(match self.aggregated(subquery, &outer, packed_rows)? {
                        Some(rewritten) => Transformed::yes(rewritten),
                        None => Transformed::no(e),
                    })
                })?
                .update_data(|e| name.restore(e)))
        })?;
        if !rewritten.transformed {
            return Ok(rewritten);
        }
        if packed.is_empty() {
            return rewritten.map_data(|plan| plan.recompute_schema());
        }
        let LogicalPlan::Projection(projection) = rewritten.data else {
            return plan_err!("packed subquery rows outside a projection");
        };
        let input = projection.input.as_ref().clone();
        let mut below: Vec<Expr> = input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        below.extend(packed);
        let input = LogicalPlanBuilder::from(input).project(below)?.build()?;
        let plan = Projection::try_new(projection.expr, Arc::new(input))?;
        Ok(Transformed::yes(LogicalPlan::Projection(plan)))
    }

    /// The subquery aggregated with `single_row`, under a CASE guard holding its
    /// filters on outer columns alone; None when DataFusion can plan it as it is, or
    /// when its result reads outer columns and there is no projection (`packed`) to
    /// compute it below.
    fn aggregated(
        &self,
        subquery: &Subquery,
        outer: &DFSchema,
        packed: Option<&mut Vec<Expr>>,
    ) -> Result<Option<Expr>> {
        if subquery.outer_ref_columns.is_empty() {
            return self.nullable_uncorrelated(subquery);
        }
        if !needs_aggregation(&subquery.subquery) {
            return Ok(None);
        }
        let LogicalPlan::Projection(projection) = subquery.subquery.as_ref() else {
            return Ok(None);
        };
        let [value] = projection.expr.as_slice() else {
            return Ok(None);
        };
        let name = projection.schema.field(0).name().clone();
        let value = value.clone().unalias();
        let (guard, input) = hoist_outer_filters(projection.input.as_ref().clone(), outer)?;
        let reads_outer = value.exists(|e| Ok(matches!(e, Expr::OuterReferenceColumn(..))))?;
        if !reads_outer {
            let rewritten = self.single_row_subquery(subquery, input, value, name)?;
            return Ok(Some(match guard {
                Some(guard) => when(guard, rewritten).end()?,
                None => rewritten,
            }));
        }
        let Some(packed) = packed else {
            return Ok(None);
        };
        // The inner columns the result reads, in a stable order, packed with a field
        // that is never NULL so that a NULL row means "no row".
        let mut inner: Vec<Column> = value.column_refs().into_iter().cloned().collect();
        inner.sort_by_key(|c| c.flat_name());
        let mut fields = vec![lit("present"), lit(true)];
        for (i, column) in inner.iter().enumerate() {
            fields.push(lit(format!("c{i}")));
            fields.push(Expr::Column(column.clone()));
        }
        let row_subquery = self.single_row_subquery(subquery, input, named_struct(fields), name)?;
        let alias = format!("{PACKED_ROW}{}", packed.len());
        packed.push(row_subquery.alias(alias.clone()));
        let row = Expr::Column(Column::from_name(alias));
        let result = value
            .transform_up(|e| match e {
                Expr::OuterReferenceColumn(_, column) if outer.has_column(&column) => {
                    Ok(Transformed::yes(Expr::Column(column)))
                }
                Expr::OuterReferenceColumn(..) => plan_err!("outer column of a query further out"),
                Expr::Column(column) => match inner.iter().position(|c| *c == column) {
                    Some(i) => Ok(Transformed::yes(get_field(row.clone(), format!("c{i}")))),
                    None => plan_err!("column {column} not packed"),
                },
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let present = row.is_not_null();
        let condition = match guard {
            Some(guard) => guard.and(present),
            None => present,
        };
        Ok(Some(when(condition, result).end()?))
    }

    /// An uncorrelated subquery whose column DataFusion declares non-null (pgjdbc's
    /// `typinput = 'pg_catalog.array_in'::regproc`, a lookup in `pg_proc.oid`),
    /// aggregated with `single_row`, whose result may be NULL; None for any other.
    fn nullable_uncorrelated(&self, subquery: &Subquery) -> Result<Option<Expr>> {
        let schema = subquery.subquery.schema();
        if schema.fields().len() != 1
            || schema.field(0).is_nullable()
            || !needs_aggregation(&subquery.subquery)
        {
            return Ok(None);
        }
        let LogicalPlan::Projection(projection) = subquery.subquery.as_ref() else {
            return Ok(None);
        };
        let [value] = projection.expr.as_slice() else {
            return Ok(None);
        };
        let name = projection.schema.field(0).name().clone();
        let input = projection.input.as_ref().clone();
        self.single_row_subquery(subquery, input, value.clone().unalias(), name)
            .map(Some)
    }

    /// `(SELECT single_row(value) AS name FROM input)`, correlated as `input` is.
    fn single_row_subquery(
        &self,
        original: &Subquery,
        input: LogicalPlan,
        value: Expr,
        name: String,
    ) -> Result<Expr> {
        let aggregate = LogicalPlanBuilder::from(input)
            .aggregate(Vec::<Expr>::new(), vec![self.single_row.call(vec![value])])?
            .build()?;
        let result = Expr::Column(Column::from(aggregate.schema().qualified_field(0)));
        let plan = LogicalPlanBuilder::from(aggregate)
            .project(vec![result.alias(name)])?
            .build()?;
        Ok(Expr::ScalarSubquery(Subquery {
            outer_ref_columns: plan.all_out_ref_exprs(),
            subquery: Arc::new(plan),
            spans: original.spans.clone(),
        }))
    }
}

impl AnalyzerRule for SingleRowSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| self.rewrite_node(node))
            .data()
    }

    fn name(&self) -> &str {
        "single_row_subqueries"
    }
}

/// What DataFusion's plan check refuses in a correlated scalar subquery: a result
/// that is neither aggregated nor known to have at most one row.
fn needs_aggregation(plan: &LogicalPlan) -> bool {
    let mut inner = plan;
    while let LogicalPlan::Projection(p) = inner {
        inner = p.input.as_ref();
    }
    match inner {
        LogicalPlan::Aggregate(_) => false,
        LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) => false,
        _ => plan.max_rows().is_none_or(|rows| rows > 1),
    }
}

/// Splits the subquery's top filter into the conjuncts on outer columns alone (as an
/// expression over `outer`) and the plan filtered by the rest. Outer columns that
/// `outer` does not hold belong to a query further out: those filters stay.
fn hoist_outer_filters(
    input: LogicalPlan,
    outer: &DFSchema,
) -> Result<(Option<Expr>, LogicalPlan)> {
    let LogicalPlan::Filter(filter) = input else {
        return Ok((None, input));
    };
    let (hoisted, kept): (Vec<Expr>, Vec<Expr>) = split_conjunction_owned(filter.predicate.clone())
        .into_iter()
        .partition(|conjunct| on_outer_columns_only(conjunct, outer));
    if hoisted.is_empty() {
        return Ok((None, LogicalPlan::Filter(filter)));
    }
    let guard = conjunction(hoisted)
        .map(|guard| {
            guard.transform_up(|e| match e {
                Expr::OuterReferenceColumn(_, column) => Ok(Transformed::yes(Expr::Column(column))),
                other => Ok(Transformed::no(other)),
            })
        })
        .transpose()?
        .map(|t| t.data);
    let input = match conjunction(kept) {
        Some(predicate) => {
            LogicalPlan::Filter(Filter::try_new(predicate, Arc::clone(&filter.input))?)
        }
        None => filter.input.as_ref().clone(),
    };
    Ok((guard, input))
}

/// True for an expression that reads outer columns `outer` holds and nothing else of
/// the subquery (no subquery of its own either).
fn on_outer_columns_only(expr: &Expr, outer: &DFSchema) -> bool {
    let mut outer_refs = 0;
    let mut other = false;
    // The closure never fails; apply's Result only carries a visitor's error.
    let _ = expr.apply(|e| {
        match e {
            Expr::OuterReferenceColumn(_, column) if outer.has_column(column) => outer_refs += 1,
            Expr::OuterReferenceColumn(..)
            | Expr::Column(_)
            | Expr::ScalarSubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::SetComparison(_) => other = true,
            _ => {}
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    outer_refs > 0 && !other
}
