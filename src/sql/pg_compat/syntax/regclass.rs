//! Casts of a computed name to `regclass`: Metabase's field sync reads each column's
//! comment with `col_description(CAST(CAST(FORMAT('%I.%I', schema, table) AS
//! REGCLASS) AS OID), n)`.
//!
//! datafusion-pg-catalog resolves a cast of a literal name to `regclass` (a lookup
//! in `pg_class`) and reads a cast of a column as the oid the column holds; a cast of
//! any other text (a function's result, a concatenation) reached DataFusion as a cast
//! of text to an integer, which fails. Here it becomes the lookup PostgreSQL does:
//! the name is split as an identifier (`parse_ident`: quotes kept, unquoted parts
//! lower-cased), an unqualified name is looked for in the current schema, and the
//! answer is the relation's oid from `pg_class`, NULL for no such relation (PostgreSQL raises an
//! error there; `to_regclass` answers NULL, which clients that compute names are
//! ready for).

use super::call;
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr, SelectItem, SetExpr, Statement, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The lookup; `$1` stands for the relation's qualified name, `schema.relation`,
/// computed from the outer row. The subquery is uncorrelated (every relation's oid
/// by name, read once per statement): DataFusion cannot decorrelate a lookup by a
/// name computed from the outer row.
const LOOKUP: &str = "SELECT map_extract((\
     SELECT map(array_agg(__regclass_n.nspname || '.' || __regclass_c.relname), array_agg(__regclass_c.oid)) \
     FROM pg_catalog.pg_class __regclass_c \
     JOIN pg_catalog.pg_namespace __regclass_n ON __regclass_c.relnamespace = __regclass_n.oid\
     ), $1)[1]";

/// Rewrites the casts in the select list of `statement`'s outermost query, outside
/// subqueries. Elsewhere (a filter, a subquery: SQLAlchemy casts
/// `pg_get_serial_sequence(...)`, always NULL here, inside a correlated subquery's
/// filter) DataFusion cannot place the lookup's subquery, and the cast is left as it
/// was.
pub(super) fn rewrite(statement: &mut Statement) {
    let Statement::Query(query) = statement else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in select.projection.iter_mut() {
        if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
            super::rewrite_outside_subqueries(expr, rewrite_cast);
        }
    }
}

fn rewrite_cast(expr: &mut Expr) {
    let Expr::Cast {
        expr: operand,
        data_type,
        ..
    } = expr
    else {
        return;
    };
    if !is_regclass(data_type) || !is_computed_text(operand) {
        return;
    }
    let Some(mut lookup) = lookup_expr() else {
        return;
    };
    let _ = lookup.visit(&mut ReplacePlaceholder(qualified_name((**operand).clone())));
    *expr = lookup;
}

fn is_regclass(data_type: &DataType) -> bool {
    let name = data_type.to_string().to_ascii_lowercase();
    name.strip_prefix("pg_catalog.").unwrap_or(&name) == "regclass"
}

/// Whether `expr` computes a text (a name), as opposed to a literal, which the
/// catalog crate resolves, or a column, which holds an oid.
fn is_computed_text(expr: &Expr) -> bool {
    match expr {
        Expr::Function(_) => true,
        Expr::BinaryOp {
            op: BinaryOperator::StringConcat,
            ..
        } => true,
        Expr::Cast { data_type, .. } => matches!(
            data_type,
            DataType::Text | DataType::Varchar(_) | DataType::String(_)
        ),
        Expr::Nested(inner) => is_computed_text(inner),
        _ => false,
    }
}

/// `schema.relation` for a name as written: `array_to_string(parts, '.')` of its
/// identifier parts, with the current schema in front of an unqualified name.
fn qualified_name(name: Expr) -> Expr {
    let parts = call("parse_ident", vec![name]);
    let qualified = Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
            condition: Expr::BinaryOp {
                left: Box::new(call(
                    "array_length",
                    vec![parts.clone(), Expr::value(Value::Number("1".into(), false))],
                )),
                op: BinaryOperator::Eq,
                right: Box::new(Expr::value(Value::Number("1".into(), false))),
            },
            result: call(
                "array_prepend",
                vec![call("current_schema", vec![]), parts.clone()],
            ),
        }],
        else_result: Some(Box::new(parts)),
    };
    call(
        "array_to_string",
        vec![
            qualified,
            Expr::value(Value::SingleQuotedString(".".into())),
        ],
    )
}

/// [`LOOKUP`]'s one expression.
fn lookup_expr() -> Option<Expr> {
    let Statement::Query(query) = Parser::parse_sql(&PostgreSqlDialect {}, LOOKUP)
        .ok()?
        .pop()?
    else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    match select.projection.into_iter().next()? {
        SelectItem::UnnamedExpr(expr) => Some(expr),
        _ => None,
    }
}

struct ReplacePlaceholder(Expr);

impl VisitorMut for ReplacePlaceholder {
    type Break = ();

    // After the children: the name put in is not visited (it may hold placeholders
    // of its own).
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(value) = expr {
            if matches!(value.value, Value::Placeholder(_)) {
                *expr = self.0.clone();
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rewritten, run};

    #[tokio::test]
    async fn a_computed_name_finds_its_relation() {
        assert_eq!(
            run("SELECT CAST(format('%I.%I', 'public', 't') AS REGCLASS) = (SELECT oid FROM pg_catalog.pg_class WHERE relname = 't') AS same, \
                 CAST(concat('no', 'ne') AS REGCLASS) IS NULL AS missing").await,
            ["true,true"]
        );
    }

    #[test]
    fn a_computed_name_cast_to_regclass_is_looked_up() {
        let out = rewritten("SELECT CAST(FORMAT('%I.%I', s, t) AS REGCLASS) FROM c");
        assert!(
            out.contains("__regclass_c.relnamespace = __regclass_n.oid), array_to_string(CASE WHEN array_length(parse_ident(FORMAT('%I.%I', s, t)), 1) = 1"),
            "{out}"
        );
        // A column holds an oid: left as it is.
        assert_eq!(
            rewritten("SELECT CAST(attrelid AS REGCLASS) FROM c"),
            "SELECT CAST(attrelid AS REGCLASS) FROM c"
        );
        // Outside the select list DataFusion cannot run the lookup: left as it is.
        assert_eq!(
            rewritten("SELECT (SELECT 1 WHERE CAST(f(x) AS REGCLASS) = 1) FROM c"),
            "SELECT (SELECT 1 WHERE CAST(f(x) AS REGCLASS) = 1) FROM c"
        );
    }
}
