//! PostgreSQL's dialect of sqlparser with a bound on how much work a parse may do.
//!
//! sqlparser backtracks: a function argument is first parsed as the name of a named
//! argument (`json_object('a': 1)`) and, when no `:` or `=>` follows, parsed again
//! as a value; a keyword such as `CAST` or `INTERVAL` whose special form fails is
//! parsed again as a plain name. Nested, each level doubles the work: `SELECT
//! E(E(E(...` forty deep (a hundred bytes) would parse for days, holding a query
//! thread that no statement timeout reaches (the timeout starts after the parse).
//!
//! [`BoundedDialect`] reads SQL exactly as [`PostgreSqlDialect`] does, and counts the
//! expressions the parser starts. Past the budget every further expression fails at
//! once, the parse unwinds, and [`BoundedDialect::exhausted`] tells the caller to
//! refuse the statement as too complex. The budget grows with the statement's
//! length, so only backtracking runs it out: a linear parse starts about one
//! expression per token. A statement that parses within the budget here parses in
//! as much work in every other parser of the same dialect, so the guard's parse
//! bounds them all.

use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Tokenizer;
use std::any::TypeId;
use std::cell::Cell;
use std::collections::VecDeque;

/// `sql` parsed as PostgreSQL's dialect reads it; `None` when the parse ran out of its
/// budget (the statement is to be refused as too complex).
pub(crate) fn parse_postgres(sql: &str) -> Option<Result<Vec<Statement>, ParserError>> {
    let tokens = match Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() {
        Ok(tokens) => tokens,
        Err(error) => return Some(Err(error.into())),
    };
    let dialect = BoundedDialect::for_tokens(tokens.len());
    let parsed = Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements();
    (!dialect.exhausted()).then_some(parsed)
}

/// `sql` parsed by DataFusion's parser (its own statements: `COPY ... TO`, `CREATE
/// EXTERNAL TABLE`...) in PostgreSQL's dialect; `None` when it ran out of its budget.
pub(crate) fn parse_datafusion(
    sql: &str,
) -> Option<Result<VecDeque<DfStatement>, DataFusionError>> {
    let tokens = match Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() {
        Ok(tokens) => tokens,
        Err(error) => return Some(Err(ParserError::from(error).into())),
    };
    let dialect = BoundedDialect::for_tokens(tokens.len());
    let parsed = DFParserBuilder::new(tokens)
        .with_dialect(&dialect)
        .build()
        .and_then(|mut parser| parser.parse_statements());
    (!dialect.exhausted()).then_some(parsed)
}

/// Expressions any statement may start, however short.
const BASE_BUDGET: usize = 50_000;

/// Expressions a statement may start per token it has. A parse without backtracking
/// starts at most about one per token; each level of a legitimate backtrack (a
/// function call nested in another) doubles that, so 16 allows nesting a few calls
/// deep on a statement of any length and a dozen deep on a short one.
const BUDGET_PER_TOKEN: usize = 16;

/// PostgreSQL's dialect, counting the expressions a parse starts (see the module).
#[derive(Debug)]
pub(crate) struct BoundedDialect {
    postgres: PostgreSqlDialect,
    budget: usize,
    started: Cell<usize>,
}

impl BoundedDialect {
    /// A dialect for parsing a statement of `tokens` tokens.
    pub(crate) fn for_tokens(tokens: usize) -> Self {
        Self::with_budget(BASE_BUDGET.saturating_add(BUDGET_PER_TOKEN.saturating_mul(tokens)))
    }

    /// A dialect that lets a parse start at most `budget` expressions.
    pub(crate) fn with_budget(budget: usize) -> Self {
        Self {
            postgres: PostgreSqlDialect {},
            budget,
            started: Cell::new(0),
        }
    }

    /// Whether a parse ran out of its budget (its result, error or not, is to be
    /// discarded and the statement refused).
    pub(crate) fn exhausted(&self) -> bool {
        self.started.get() > self.budget
    }
}

impl Dialect for BoundedDialect {
    /// The parser's `dialect_of!(... is PostgreSqlDialect)` checks hold for this one.
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    /// Counts an expression started; past the budget, fails it with the one error
    /// that every backtracking point of the parser passes on instead of retrying.
    fn parse_prefix(&self, _parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let started = self.started.get().saturating_add(1);
        self.started.set(started);
        (started > self.budget).then_some(Err(ParserError::RecursionLimitExceeded))
    }

    // Everything below is PostgreSqlDialect's, method for method: each method that it
    // overrides is passed to it (`reads_sql_as_postgres_does` checks the result).

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.postgres.identifier_quote_style(identifier)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.postgres.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.postgres.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.postgres.is_identifier_part(ch)
    }
    fn supports_unicode_string_literal(&self) -> bool {
        self.postgres.supports_unicode_string_literal()
    }
    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.postgres.is_reserved_for_identifier(kw)
    }
    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.postgres.is_custom_operator_part(ch)
    }
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        self.postgres.get_next_precedence(parser)
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        self.postgres.supports_filter_during_aggregation()
    }
    fn supports_group_by_expr(&self) -> bool {
        self.postgres.supports_group_by_expr()
    }
    fn prec_value(&self, prec: Precedence) -> u8 {
        self.postgres.prec_value(prec)
    }
    fn allow_extract_custom(&self) -> bool {
        self.postgres.allow_extract_custom()
    }
    fn allow_extract_single_quotes(&self) -> bool {
        self.postgres.allow_extract_single_quotes()
    }
    fn supports_create_index_with_clause(&self) -> bool {
        self.postgres.supports_create_index_with_clause()
    }
    fn supports_explain_with_utility_options(&self) -> bool {
        self.postgres.supports_explain_with_utility_options()
    }
    fn supports_listen_notify(&self) -> bool {
        self.postgres.supports_listen_notify()
    }
    fn supports_factorial_operator(&self) -> bool {
        self.postgres.supports_factorial_operator()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.postgres.supports_bitwise_shift_operators()
    }
    fn supports_comment_on(&self) -> bool {
        self.postgres.supports_comment_on()
    }
    fn supports_load_extension(&self) -> bool {
        self.postgres.supports_load_extension()
    }
    fn supports_named_fn_args_with_colon_operator(&self) -> bool {
        self.postgres.supports_named_fn_args_with_colon_operator()
    }
    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        self.postgres.supports_named_fn_args_with_expr_name()
    }
    fn supports_empty_projections(&self) -> bool {
        self.postgres.supports_empty_projections()
    }
    fn supports_nested_comments(&self) -> bool {
        self.postgres.supports_nested_comments()
    }
    fn supports_string_escape_constant(&self) -> bool {
        self.postgres.supports_string_escape_constant()
    }
    fn supports_numeric_literal_underscores(&self) -> bool {
        self.postgres.supports_numeric_literal_underscores()
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.postgres.supports_array_typedef_with_brackets()
    }
    fn supports_geometric_types(&self) -> bool {
        self.postgres.supports_geometric_types()
    }
    fn supports_set_names(&self) -> bool {
        self.postgres.supports_set_names()
    }
    fn supports_alter_column_type_using(&self) -> bool {
        self.postgres.supports_alter_column_type_using()
    }
    fn supports_notnull_operator(&self) -> bool {
        self.postgres.supports_notnull_operator()
    }
    fn supports_interval_options(&self) -> bool {
        self.postgres.supports_interval_options()
    }
    fn supports_insert_table_alias(&self) -> bool {
        self.postgres.supports_insert_table_alias()
    }
    fn supports_create_table_like_parenthesized(&self) -> bool {
        self.postgres.supports_create_table_like_parenthesized()
    }
    fn supports_select_wildcard_with_alias(&self) -> bool {
        self.postgres.supports_select_wildcard_with_alias()
    }
    fn supports_comma_separated_trim(&self) -> bool {
        self.postgres.supports_comma_separated_trim()
    }
    fn supports_xml_expressions(&self) -> bool {
        self.postgres.supports_xml_expressions()
    }
    fn supports_comment_optimizer_hint(&self) -> bool {
        self.postgres.supports_comment_optimizer_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn parse(dialect: &dyn Dialect, sql: &str) -> Result<Vec<Statement>, ParserError> {
        Parser::new(dialect)
            .with_recursion_limit(50)
            .try_with_sql(sql)?
            .parse_statements()
    }

    /// Runs `f` on a thread; a parse that backtracks without bound would never
    /// return, so a minute without an answer fails the test instead of hanging it.
    fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || send.send(f()));
        receive
            .recv_timeout(Duration::from_secs(60))
            .expect("the parse did not end")
    }

    #[test]
    fn reads_sql_as_postgres_does() {
        // Statements that lean on what PostgreSQL's dialect overrides: quoting,
        // operators and their precedence, named arguments, geometric and escape
        // literals, `NOTNULL`, `!` factorial, shifts, nested comments, intervals.
        let statements = [
            r#"SELECT "Mixed Case", a::int + b ->> 'k', c @> '{1}', d << 2 FROM "t" WHERE x NOTNULL"#,
            "SELECT json_object('a': 1), f(x => 2), g(name := 3) /* a /* nested */ comment */",
            "SELECT E'tab\\t', U&'d\\0061t', 1_000, 5 !, point '(1,2)', interval '1 day' hour",
            "SELECT max(interval) FROM t GROUP BY ALL",
            "SELECT COUNT(*) FILTER (WHERE a ~* 'x' OR b !~ 'y') FROM t",
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND n.nspname !~ '^pg_' ORDER BY 1, 2",
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16384'::oid AND NOT a.attisdropped",
            "SELECT trim(both 'x' from s), trim(s, 'x'), substring(s from 2 for 3), position('a' in s), extract(epoch from ts) FROM t",
            "SELECT CAST(CAST(a AS int) AS text), COALESCE(NULLIF(TRIM(LOWER(s)), ''), 'none') FROM t",
            "LISTEN chan",
            "EXPLAIN (ANALYZE, BUFFERS) SELECT 1",
            "COMMENT ON TABLE t IS 'x'",
            "SELECT 'a' || 'b' AS s, 2 ^ 3, 7 % 2, |/ 9.0",
            "SET NAMES 'UTF8'",
        ];
        for sql in statements {
            let expected = parse(&PostgreSqlDialect {}, sql);
            let dialect = BoundedDialect::for_tokens(100);
            assert_eq!(parse(&dialect, sql), expected, "{sql}");
            assert!(!dialect.exhausted(), "{sql}");
        }
    }

    #[test]
    fn backtracking_that_would_not_end_runs_out_of_its_budget() {
        // Each nests forty calls deep (within the parser's recursion limit of 50,
        // which ends deeper nesting on the first descent) and backtracks at every
        // level: 2^40 expressions.
        for (unit, times) in [
            ("E(", 40),
            ("CAST(", 40),
            ("INTERVAL(", 40),
            ("f(1, g(", 20),
        ] {
            let sql = format!("SELECT {}", unit.repeat(times));
            let exhausted = within_a_minute(move || {
                let dialect = BoundedDialect::for_tokens(sql.len());
                let parsed = parse(&dialect, &sql);
                (dialect.exhausted(), parsed.is_err())
            });
            assert_eq!(exhausted, (true, true), "{unit}");
        }
    }

    #[test]
    fn the_parse_helpers_refuse_what_runs_out() {
        let sql = format!("COPY (SELECT {}) TO 'x'", "CAST(".repeat(40));
        let copy = sql.clone();
        assert!(within_a_minute(move || parse_datafusion(&copy).is_none()));
        assert!(within_a_minute(move || parse_postgres(&sql).is_none()));
        assert!(matches!(parse_postgres("SELECT 1"), Some(Ok(s)) if s.len() == 1));
        assert!(matches!(parse_datafusion("SELECT 1"), Some(Ok(s)) if s.len() == 1));
        assert!(matches!(parse_postgres("SELECT 'open"), Some(Err(_))));
    }

    #[test]
    fn calls_nested_as_deep_as_people_write_them_parse() {
        let sql = format!("SELECT {}1{}", "abs(".repeat(10), ")".repeat(10));
        let dialect = BoundedDialect::for_tokens(30);
        assert!(parse(&dialect, &sql).is_ok());
        assert!(!dialect.exhausted());
    }
}
