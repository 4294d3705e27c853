//! What a statement may do, checked before DataFusion plans it: how deep its
//! expressions nest, whether it reaches the host's files, which settings it changes.
//!
//! * **Depth.** sqlparser stops deep parentheses with its recursion limit, but builds a
//!   long chain such as `a OR b OR c ...` or `1 + 1 + ...` in a loop, as one left-deep
//!   tree. Planning, optimizing, printing and dropping that tree recurse once per
//!   level; 1,500 `OR` terms overflowed a Tokio worker's 2 MiB stack and aborted the
//!   whole server. A statement is therefore measured twice: first from its tokens,
//!   an upper bound on how deep any of its expressions can nest that costs one pass
//!   and no tree (so a megabyte of `+1` never becomes a tree at all), then, when that
//!   bound is over the limit, exactly on the parsed tree, by a walk that stops one
//!   level past the limit. Over the limit the statement fails as PostgreSQL's does
//!   when it runs out of stack: SQLSTATE 54001, and nothing else is touched.
//! * **Parse work.** sqlparser backtracks, and nested backtracking doubles per level:
//!   a hundred bytes of `E(E(E(...` would parse for days. The guard parses with a
//!   budget of expressions started (`dialect::BoundedDialect`) before any other parser
//!   sees the text; a statement that runs out is refused, also with 54001.
//! * **Host access.** DataFusion's `COPY ... TO 'path'` and `CREATE EXTERNAL TABLE ...
//!   LOCATION` read and write the server's file system as the server's OS user. They
//!   are refused unless the operator allowed host access; the engine's object store
//!   registry refuses file and network URLs as well (see `host_access`), so nothing
//!   reaches the host even through a statement form this list misses.
//! * **Settings.** A session may `SET` the PostgreSQL parameters drivers and BI tools
//!   send (`application_name`, `DateStyle`, `TimeZone`, `extra_float_digits`...), and
//!   nothing of DataFusion's own configuration: those settings size memory, threads
//!   and batches, which the operator owns.

use super::dialect::BoundedDialect;
use super::SqlError;
use datafusion::sql::parser::{
    CopyToSource, DFParserBuilder, ResetStatement, Statement as DfStatement,
};
use datafusion::sql::sqlparser::ast::{
    CopyTarget, Expr, ObjectName, Reset, ResetStatement as SqlResetStatement, Set, Statement,
    Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use std::ops::ControlFlow;

/// The deepest expression nesting accepted by default. Planning a statement at this
/// depth takes well under the stack of the threads that run queries (the server's run
/// with 64 MiB; see `server::query_runtime`); PostgreSQL's own default stack limit
/// stops chains a few thousand deep.
pub const DEFAULT_MAX_EXPRESSION_DEPTH: usize = 1000;

/// sqlparser's limit on nested parentheses and subqueries, as DataFusion sets it.
const PARSER_RECURSION_LIMIT: usize = 50;

/// Why a statement is refused before it is planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Expressions nest deeper than the limit.
    #[error(
        "stack depth limit exceeded: an expression nests deeper than {limit} levels \
         (split long OR chains into IN lists, or long sums into several statements)"
    )]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// Parsing the statement backtracks past the work any statement of its length
    /// needs (expressions or calls nested very deep around an error).
    #[error(
        "statement too complex: parsing it would take too long (nest fewer function calls \
         or parentheses)"
    )]
    TooComplex,
    /// The statement reads or writes the server's file system.
    #[error(
        "permission denied: {0} reaches the server's file system; this server does not allow it \
         (allow_host_access)"
    )]
    HostAccess(&'static str),
    /// A setting sessions may not change.
    #[error("permission denied to set parameter \"{0}\"")]
    Setting(String),
    /// Creating one more table or view would pass the limit on user-created objects.
    #[error(
        "too many user-created tables and views: the limit is {limit} (max_user_objects); \
         drop some first"
    )]
    TooManyObjects {
        /// The limit.
        limit: usize,
    },
    /// Declaring one more Kafka table or stream would pass the engine's limit.
    #[error(
        "too many Kafka tables and streams: the limit is {limit} (max_sources); drop some first"
    )]
    TooManySources {
        /// The limit.
        limit: usize,
    },
}

impl Refusal {
    /// The SQLSTATE PostgreSQL reports for the same refusal.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Refusal::TooDeep { .. } | Refusal::TooComplex => "54001", // statement_too_complex
            Refusal::HostAccess(_) | Refusal::Setting(_) => "42501",  // insufficient_privilege
            Refusal::TooManyObjects { .. } | Refusal::TooManySources { .. } => "53400", // configuration_limit_exceeded
        }
    }
}

/// What the guard learnt of statements it let through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// Every statement only reads or changes the session (see
    /// [`is_session_statement`]).
    pub session_statements: bool,
    /// A statement creates a relation or schema held in memory (`CREATE TABLE` without
    /// a topic, `CREATE TABLE AS`, `CREATE VIEW`, `CREATE SCHEMA`...).
    pub creates_object: bool,
}

/// The checks every statement passes before it is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementGuard {
    /// The deepest expression nesting accepted.
    pub max_expression_depth: usize,
    /// Whether statements may read and write the host's files (`COPY TO`, `CREATE
    /// EXTERNAL TABLE`).
    pub allow_host_access: bool,
}

impl Default for StatementGuard {
    fn default() -> Self {
        Self {
            max_expression_depth: DEFAULT_MAX_EXPRESSION_DEPTH,
            allow_host_access: false,
        }
    }
}

impl StatementGuard {
    /// Checks every statement of `sql`. Text that does not parse is let through when
    /// its tokens cannot nest too deep (the parser that runs it reports the syntax
    /// error), and refused as too deep otherwise.
    pub fn check(&self, sql: &str) -> Result<Checked, SqlError> {
        let dialect = PostgreSqlDialect {};
        let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
            return Ok(Checked::default());
        };
        let bound = depth_bound(&tokens);
        if bound <= self.max_expression_depth {
            // Still parsed for what the statements do.
            return self.check_parsed(tokens, None);
        }
        // A tree built from more than a few times the limit is refused unbuilt: the
        // bound overestimates chains by about two (an `=` under each `OR`), and
        // dropping a tree recurses once per level too.
        if bound > 4 * self.max_expression_depth {
            return Err(self.too_deep());
        }
        self.check_parsed(tokens, Some(self.max_expression_depth))
    }

    /// `sql` parsed as PostgreSQL's parser reads it, unless the guard refuses it first:
    /// an expression nests deeper than the limit (known from the tokens alone in the
    /// common case), or the parse runs out of its budget of work (see
    /// `dialect::BoundedDialect`). `Ok(Err(..))` is a syntax error, which leaves `sql`
    /// to other parsers (DataFusion's own statements, source DDL); what passes here
    /// parses within the same work in each of them.
    pub(crate) fn parse(&self, sql: &str) -> Result<Result<Vec<Statement>, ParserError>, SqlError> {
        let dialect = PostgreSqlDialect {};
        let tokens = match Tokenizer::new(&dialect, sql).tokenize_with_location() {
            Ok(tokens) => tokens,
            Err(error) => return Ok(Err(error.into())),
        };
        let bound = depth_bound(&tokens);
        if bound > 4 * self.max_expression_depth {
            return Err(self.too_deep());
        }
        let dialect = BoundedDialect::for_tokens(tokens.len());
        let parsed = Parser::new(&dialect)
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .with_tokens_with_locations(tokens)
            .parse_statements();
        if dialect.exhausted() {
            return Err(SqlError::Refused(Refusal::TooComplex));
        }
        if bound > self.max_expression_depth {
            match &parsed {
                Err(_) => return Err(self.too_deep()),
                Ok(statements) => {
                    let limit = self.max_expression_depth;
                    if statements
                        .iter()
                        .any(|s| s.visit(&mut Depth::new(limit)).is_break())
                    {
                        return Err(self.too_deep());
                    }
                }
            }
        }
        Ok(parsed)
    }

    fn too_deep(&self) -> SqlError {
        SqlError::Refused(Refusal::TooDeep {
            limit: self.max_expression_depth,
        })
    }

    fn check_parsed(
        &self,
        tokens: Vec<TokenWithSpan>,
        depth_limit: Option<usize>,
    ) -> Result<Checked, SqlError> {
        let session_keyword = starts_with_session_keyword(&tokens);
        let dialect = BoundedDialect::for_tokens(tokens.len());
        let parsed = DFParserBuilder::new(tokens)
            .with_dialect(&dialect)
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .build()
            .and_then(|mut parser| parser.parse_statements());
        if dialect.exhausted() {
            return Err(SqlError::Refused(Refusal::TooComplex));
        }
        let statements = match parsed {
            Ok(statements) => statements,
            // The statement fails to parse where it runs too; only a statement that
            // could be too deep is stopped here.
            Err(_) if depth_limit.is_some() => return Err(self.too_deep()),
            // Session statements in a syntax DataFusion's parser lacks still belong to
            // the session (PostgreSQL's own parser may take them).
            Err(_) => {
                return Ok(Checked {
                    session_statements: session_keyword,
                    creates_object: false,
                })
            }
        };
        let mut checked = Checked {
            session_statements: !statements.is_empty(),
            creates_object: false,
        };
        for statement in &statements {
            if let Some(limit) = depth_limit {
                if nests_deeper_than(statement, limit) {
                    return Err(self.too_deep());
                }
            }
            self.check_statement(statement)?;
            checked.creates_object |= creates_object(statement);
            checked.session_statements &= matches!(
                statement,
                DfStatement::Statement(statement) if is_session_statement(statement)
            );
        }
        Ok(checked)
    }

    /// Refuses a statement that reaches the host's files (unless allowed) or changes a
    /// setting a session may not change.
    pub(crate) fn check_statement(&self, statement: &DfStatement) -> Result<(), SqlError> {
        let refuse = |what| Err(SqlError::Refused(Refusal::HostAccess(what)));
        match statement {
            DfStatement::CopyTo(_) if !self.allow_host_access => refuse("COPY ... TO"),
            DfStatement::CreateExternalTable(_) if !self.allow_host_access => {
                refuse("CREATE EXTERNAL TABLE")
            }
            DfStatement::Explain(explain) => self.check_statement(&explain.statement),
            DfStatement::Reset(ResetStatement::Variable(name)) => check_setting(name),
            DfStatement::Statement(statement) => self.check_sql_statement(statement),
            _ => Ok(()),
        }
    }

    fn check_sql_statement(&self, statement: &Statement) -> Result<(), SqlError> {
        match statement {
            // To or from STDOUT/STDIN stays on the connection.
            Statement::Copy {
                target: CopyTarget::File { .. } | CopyTarget::Program { .. },
                ..
            }
            | Statement::CopyIntoSnowflake { .. }
                if !self.allow_host_access =>
            {
                Err(SqlError::Refused(Refusal::HostAccess("COPY")))
            }
            Statement::Explain { statement, .. } | Statement::Prepare { statement, .. } => {
                self.check_sql_statement(statement)
            }
            Statement::Set(set) => check_set(set),
            Statement::Reset(SqlResetStatement {
                reset: Reset::ConfigurationParameter(name),
            }) => check_setting(name),
            _ => Ok(()),
        }
    }
}

/// Statements that read or change the session rather than data: `SET`, `SHOW` of a
/// setting, transaction control, cursors (`DECLARE`, `FETCH`, `CLOSE`), and `DISCARD` /
/// `DEALLOCATE` of what a session holds. A wire
/// front end answers these on the connection itself.
pub fn is_session_statement(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
            | Statement::Reset(_)
    )
}

/// Whether the first word is one that starts a session statement.
fn starts_with_session_keyword(tokens: &[TokenWithSpan]) -> bool {
    let first = tokens.iter().find_map(|t| match &t.token {
        Token::Whitespace(_) => None,
        Token::Word(word) => Some(Some(word.keyword)),
        _ => Some(None),
    });
    matches!(
        first.flatten(),
        Some(
            Keyword::SET
                | Keyword::SHOW
                | Keyword::BEGIN
                | Keyword::START
                | Keyword::COMMIT
                | Keyword::END
                | Keyword::ROLLBACK
                | Keyword::ABORT
                | Keyword::DECLARE
                | Keyword::FETCH
                | Keyword::CLOSE
        )
    )
}

/// Whether `statement` creates a table, view, schema or function in memory.
pub(crate) fn creates_object(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::CreateExternalTable(_) => true,
        DfStatement::Statement(statement) => matches!(
            **statement,
            Statement::CreateTable(_)
                | Statement::CreateView { .. }
                | Statement::CreateSchema { .. }
                | Statement::CreateDatabase { .. }
                | Statement::CreateFunction(_)
        ),
        _ => false,
    }
}

/// PostgreSQL parameters that drivers and BI tools set on connect or per session. They
/// change only the session (or nothing: most are accepted and ignored, as PostgreSQL
/// accepts them for features ktable does not have).
const SESSION_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "jit",
    "lock_timeout",
    "names",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "time zone",
    "timezone",
    "transaction_isolation",
    "transaction_read_only",
];

/// DataFusion settings a session may change: how `EXPLAIN` prints, nothing that sizes
/// resources.
const SESSION_DATAFUSION_PREFIXES: &[&str] = &["datafusion.explain."];

fn check_setting(name: &ObjectName) -> Result<(), SqlError> {
    let name = name.to_string().to_ascii_lowercase();
    let name = name.trim_matches('"');
    let allowed = SESSION_SETTINGS.contains(&name)
        || SESSION_DATAFUSION_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix));
    if allowed {
        Ok(())
    } else {
        Err(SqlError::Refused(Refusal::Setting(name.to_string())))
    }
}

fn check_set(set: &Set) -> Result<(), SqlError> {
    match set {
        Set::SingleAssignment { variable, .. } => check_setting(variable),
        Set::ParenthesizedAssignments { variables, .. } => {
            variables.iter().try_for_each(check_setting)
        }
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .try_for_each(|assignment| check_setting(&assignment.name)),
        Set::SetTimeZone { .. }
        | Set::SetNames { .. }
        | Set::SetNamesDefault {}
        | Set::SetTransaction { .. } => Ok(()),
        Set::SetRole { .. } => Err(SqlError::Refused(Refusal::Setting("role".into()))),
        Set::SetSessionAuthorization(_) => Err(SqlError::Refused(Refusal::Setting(
            "session_authorization".into(),
        ))),
        _ => Err(SqlError::Refused(Refusal::Setting(set.to_string()))),
    }
}

/// An upper bound on how deep any expression of the statements in `tokens` nests,
/// from the tokens alone.
///
/// Parentheses, brackets and `CASE ... END` open a level. Within a level, every
/// operator and keyword may put what follows one level further down (an infix
/// operator takes everything before it as its left operand), until a separator
/// starts a sibling, which is never below the one before it: a comma, or `WHEN`,
/// `THEN`, `ELSE` inside `CASE`. Identifiers and literals add nothing. Clause keywords
/// (`FROM`, `WHERE`...) are counted like operators although a query's clauses sit side
/// by side, because the same words also occur inside expressions (`IS DISTINCT FROM`,
/// `WITHIN GROUP`): a bound that is sometimes loose, never short.
/// The walk on the tree counts every expression node, leaves included; the keyword
/// that starts each statement stands for the leaf here.
fn depth_bound(tokens: &[TokenWithSpan]) -> usize {
    struct Level {
        case: bool,
        since_separator: usize,
    }
    let mut levels = vec![Level {
        case: false,
        since_separator: 0,
    }];
    // The sum of every level's `since_separator`, plus one per level opened.
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let separate = |levels: &mut Vec<Level>, depth: &mut usize| {
        if let Some(level) = levels.last_mut() {
            *depth -= level.since_separator;
            level.since_separator = 0;
        }
    };
    let close = |levels: &mut Vec<Level>, depth: &mut usize| {
        if levels.len() > 1 {
            if let Some(level) = levels.pop() {
                *depth -= 1 + level.since_separator;
            }
        }
    };
    for token in tokens {
        let keyword = match &token.token {
            Token::Word(word) => Some(word.keyword),
            _ => None,
        };
        match (&token.token, keyword) {
            (_, Some(Keyword::NoKeyword)) => {}
            (
                Token::Whitespace(_)
                | Token::Number(..)
                | Token::EOF
                | Token::SingleQuotedString(_)
                | Token::DoubleQuotedString(_)
                | Token::NationalStringLiteral(_)
                | Token::EscapedStringLiteral(_)
                | Token::HexStringLiteral(_)
                | Token::DollarQuotedString(_)
                | Token::Placeholder(_),
                _,
            ) => {}
            (Token::LParen | Token::LBracket, _) | (_, Some(Keyword::CASE)) => {
                levels.push(Level {
                    case: keyword == Some(Keyword::CASE),
                    since_separator: 0,
                });
                depth += 1;
            }
            (_, Some(Keyword::END)) if levels.last().is_some_and(|l| l.case) => {
                close(&mut levels, &mut depth);
            }
            (Token::RParen | Token::RBracket, _) => {
                // Also closes a `CASE` left open inside the parentheses.
                while levels.len() > 1 && levels.last().is_some_and(|l| l.case) {
                    close(&mut levels, &mut depth);
                }
                close(&mut levels, &mut depth);
            }
            (Token::Comma | Token::SemiColon, _) => separate(&mut levels, &mut depth),
            (_, Some(Keyword::WHEN | Keyword::THEN | Keyword::ELSE))
                if levels.last().is_some_and(|l| l.case) =>
            {
                separate(&mut levels, &mut depth);
            }
            _ => {
                if let Some(level) = levels.last_mut() {
                    level.since_separator += 1;
                    depth += 1;
                }
            }
        }
        deepest = deepest.max(depth);
    }
    deepest
}

/// Whether an expression of `statement` nests deeper than `limit`. The walk stops one
/// level past the limit, so its own recursion is bounded by it.
fn nests_deeper_than(statement: &DfStatement, limit: usize) -> bool {
    let mut depth = Depth::new(limit);
    let outcome = match statement {
        DfStatement::Statement(statement) => statement.visit(&mut depth),
        DfStatement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => query.visit(&mut depth),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DfStatement::Explain(explain) => {
            return nests_deeper_than(&explain.statement, limit);
        }
        DfStatement::CreateExternalTable(_) | DfStatement::Reset(_) => ControlFlow::Continue(()),
    };
    outcome.is_break()
}

/// Expression depth during a walk (subqueries nest through their expressions, and
/// sqlparser's recursion limit bounds them anyway).
struct Depth {
    current: usize,
    limit: usize,
}

impl Depth {
    fn new(limit: usize) -> Self {
        Self { current: 0, limit }
    }

    fn enter(&mut self) -> ControlFlow<()> {
        self.current += 1;
        if self.current > self.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.leave()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(limit: usize) -> StatementGuard {
        StatementGuard {
            max_expression_depth: limit,
            allow_host_access: false,
        }
    }

    fn chain(terms: usize, operator: &str) -> String {
        let mut sql = String::from("SELECT 1");
        for _ in 1..terms {
            sql.push_str(operator);
            sql.push('1');
        }
        sql
    }

    fn refusal(result: Result<Checked, SqlError>) -> Option<Refusal> {
        match result {
            Err(SqlError::Refused(refusal)) => Some(refusal),
            _ => None,
        }
    }

    #[test]
    fn chains_up_to_the_limit_pass_and_one_more_fails() {
        let guard = guard(100);
        // `1 + 1 + ... + 1` with n terms nests n - 1 operators over a literal: depth n.
        assert!(guard.check(&chain(100, " + ")).is_ok());
        assert_eq!(
            refusal(guard.check(&chain(101, " + "))),
            Some(Refusal::TooDeep { limit: 100 })
        );
    }

    #[test]
    fn a_huge_chain_is_refused_from_its_tokens() {
        let sql = chain(500_000, "+");
        assert_eq!(
            refusal(guard(1000).check(&sql)),
            Some(Refusal::TooDeep { limit: 1000 })
        );
    }

    #[test]
    fn long_lists_are_wide_not_deep() {
        let values: Vec<String> = (0..20_000).map(|i| format!("'k{i}'")).collect();
        let sql = format!("SELECT * FROM t WHERE id IN ({})", values.join(", "));
        assert!(guard(100).check(&sql).is_ok());
        let columns: Vec<String> = (0..5_000).map(|i| format!("a + {i} AS c{i}")).collect();
        assert!(guard(100)
            .check(&format!("SELECT {} FROM t", columns.join(", ")))
            .is_ok());
    }

    #[test]
    fn or_chains_count_their_terms() {
        let terms: Vec<String> = (0..300).map(|i| format!("id = 'k{i}'")).collect();
        let sql = format!("SELECT count(*) FROM t WHERE {}", terms.join(" OR "));
        assert!(guard(400).check(&sql).is_ok());
        assert!(refusal(guard(200).check(&sql)).is_some());
    }

    #[test]
    fn the_token_bound_is_never_below_the_tree() {
        // Shapes where the bound is tight: each must be refused by one of the two checks.
        for sql in [
            chain(60, " * "),
            format!("SELECT {}1{}", "(".repeat(40), ")".repeat(40)),
            format!("SELECT x{}", "::int".repeat(60)),
            format!(
                "SELECT a FROM t WHERE {}",
                "x IS NULL = true AND ".repeat(40) + "true"
            ),
        ] {
            assert!(refusal(guard(30).check(&sql)).is_some(), "{sql}");
        }
    }

    #[test]
    fn host_files_are_refused_unless_allowed() {
        for sql in [
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "COPY t TO '/tmp/x.parquet' STORED AS PARQUET",
            "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/etc/passwd'",
            "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/y.csv'",
        ] {
            assert!(
                matches!(refusal(guard(100).check(sql)), Some(Refusal::HostAccess(_))),
                "{sql}"
            );
            let open = StatementGuard {
                allow_host_access: true,
                ..guard(100)
            };
            assert!(open.check(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn sessions_set_postgres_parameters_but_not_datafusion_resources() {
        let guard = guard(100);
        for sql in [
            "SET application_name = 'psql'",
            "SET DateStyle TO 'ISO, MDY'",
            "SET TIME ZONE 'UTC'",
            "SET extra_float_digits = 3",
            "SET SESSION statement_timeout = '5s'",
            "SET datafusion.explain.format = 'tree'",
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SET NAMES 'UTF8'",
        ] {
            assert!(guard.check(sql).is_ok(), "{sql}");
        }
        for sql in [
            "SET datafusion.runtime.memory_limit = '1K'",
            "SET datafusion.execution.batch_size = 7",
            "RESET datafusion.execution.batch_size",
            "SET ROLE admin",
            "SET no_such_parameter = 1",
        ] {
            assert!(
                matches!(refusal(guard.check(sql)), Some(Refusal::Setting(_))),
                "{sql}"
            );
        }
    }
}
