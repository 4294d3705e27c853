//! The statement front end: SQL text in, one [`Prepared`] statement out, classified
//! once into what runs it; then [`Engine::execute`] runs it.
//!
//! Every way in goes through here (the simple and extended wire protocols, an
//! embedder's [`Engine::sql_on`], SQL files), so a statement is parsed once, held to
//! the engine's limits once, and sorted once:
//!
//! * **source DDL** (`CREATE TABLE ... WITH (topic)`, `CREATE STREAM`, `DROP`): run by
//!   the engine, which starts or stops a Kafka source;
//! * **savepoints**: accepted and done (nothing a client runs here writes);
//! * **session statements** (`SET`, `SHOW`, transactions, cursors, `DISCARD`): they
//!   change or read a client session, so a wire front end answers them itself;
//! * **subscriptions** (`SUBSCRIBE`, `DECLARE ... CURSOR FOR SUBSCRIBE`, `COPY
//!   (SUBSCRIBE ...) TO STDOUT`): recognized before parsing (PostgreSQL's parser knows
//!   no `SUBSCRIBE`; see `subscribe_syntax`), their query planned here once; a bare
//!   one runs as an unbounded stream of rows, the cursor and COPY forms are a wire
//!   front end's to answer;
//! * **point lookups** (`SELECT cols FROM t WHERE key = $1`): read from the key
//!   index at each execution, with no planning ([`PointLookup`]);
//! * **everything else**: DataFusion's logical plan, built here once, optimized and
//!   run at each execution with the parameters bound.
//!
//! Statements are parsed as PostgreSQL's, with datafusion-pg-catalog's rewrites for
//! the catalog queries clients send (the same parser the wire protocol used before),
//! and their result columns named as PostgreSQL names them (`pg_compat`);
//! DataFusion's own statements (`CREATE EXTERNAL TABLE`, `COPY ... TO`) fall back to
//! DataFusion's parser. Literal lookups and statements parsed again and again are
//! served from their [shape](super::shape) without parsing.

use super::ddl::{self, Ddl};
use super::engine::Engine;
use super::guard::{creates_object, is_session_statement, Refusal};
use super::point_lookup::PointLookup;
use super::shape::Shape;
use super::subscribe::{SubscribeError, SubscribePlan};
use super::subscribe_syntax::{self, CursorStatement, SubscribeForm};
use super::SqlError;
use arrow::array::{Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    DdlStatement, DmlStatement, LogicalPlan, Statement as PlanStatement, TransactionConclusion,
    WriteOp,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::parser::ParserError;
use std::fmt;
use std::sync::Arc;

/// What runs a prepared statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// The text held no statement.
    Empty,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`: nothing to do.
    Savepoint,
    /// ktable's source DDL.
    SourceDdl,
    /// A statement about the client session, answered by a wire front end.
    Session,
    /// A key lookup served from a table's index.
    PointLookup,
    /// A DataFusion plan.
    Query,
    /// A subscription to changes, or a statement of a subscription's cursor.
    Subscribe,
}

/// What a [`StatementKind::Subscribe`] statement is.
#[derive(Debug, Clone)]
pub enum SubscribeStatement {
    /// `SUBSCRIBE ...`: unbounded rows.
    Stream(Arc<SubscribePlan>),
    /// `COPY (SUBSCRIBE ...) TO STDOUT`.
    Copy(Arc<SubscribePlan>),
    /// `DECLARE c CURSOR FOR SUBSCRIBE ...`.
    Declare {
        /// The cursor's name.
        cursor: String,
        /// `WITH HOLD`: the cursor outlives its transaction.
        hold: bool,
        /// The subscription.
        plan: Arc<SubscribePlan>,
    },
    /// `FETCH` or `CLOSE` of a subscription's cursor, whose rows have `schema`.
    Cursor {
        /// The statement.
        statement: CursorStatement,
        /// The cursor's rows (a FETCH's result columns).
        schema: SchemaRef,
    },
}

/// A statement parsed and classified once, ready to run any number of times.
pub struct Prepared {
    sql: Arc<str>,
    body: Body,
}

enum Body {
    Empty,
    Savepoint(&'static str),
    SourceDdl {
        ddl: Ddl,
        tag: String,
    },
    Session(Box<ast::Statement>),
    PointLookup {
        lookup: Arc<PointLookup>,
        plan: LogicalPlan,
    },
    Query {
        statement: Box<DfStatement>,
        plan: LogicalPlan,
    },
    Subscribe(SubscribeStatement),
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("sql", &self.sql)
            .field("kind", &self.kind())
            .finish()
    }
}

/// What running a statement gave.
pub enum Output {
    /// The text held no statement.
    Empty,
    /// A command without rows, with PostgreSQL's command tag (`CREATE TABLE`,
    /// `INSERT 0 3`).
    Command(String),
    /// Rows, produced as the stream is polled.
    Rows(SendableRecordBatchStream),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Empty => f.write_str("Empty"),
            Output::Command(tag) => f.debug_tuple("Command").field(tag).finish(),
            Output::Rows(rows) => f.debug_tuple("Rows").field(&rows.schema()).finish(),
        }
    }
}

impl Prepared {
    /// What runs the statement.
    pub fn kind(&self) -> StatementKind {
        match &self.body {
            Body::Empty => StatementKind::Empty,
            Body::Savepoint(_) => StatementKind::Savepoint,
            Body::SourceDdl { .. } => StatementKind::SourceDdl,
            Body::Session(_) => StatementKind::Session,
            Body::PointLookup { .. } => StatementKind::PointLookup,
            Body::Query { .. } => StatementKind::Query,
            Body::Subscribe(_) => StatementKind::Subscribe,
        }
    }

    /// A `FETCH` or `CLOSE` of a subscription's cursor whose rows have `schema`: a
    /// session that holds such a cursor makes this of the statement, which the engine
    /// alone cannot tell from a `FETCH` of another cursor.
    pub fn subscription_cursor(sql: &str, statement: CursorStatement, schema: SchemaRef) -> Self {
        Self {
            sql: sql.into(),
            body: Body::Subscribe(SubscribeStatement::Cursor { statement, schema }),
        }
    }

    /// What a subscription statement is.
    pub fn subscribe_statement(&self) -> Option<&SubscribeStatement> {
        match &self.body {
            Body::Subscribe(statement) => Some(statement),
            _ => None,
        }
    }

    /// The subscription a `SUBSCRIBE`, `COPY (SUBSCRIBE)` or `DECLARE ... FOR SUBSCRIBE`
    /// starts.
    pub fn subscription(&self) -> Option<&Arc<SubscribePlan>> {
        match self.subscribe_statement()? {
            SubscribeStatement::Stream(plan)
            | SubscribeStatement::Copy(plan)
            | SubscribeStatement::Declare { plan, .. } => Some(plan),
            SubscribeStatement::Cursor { .. } => None,
        }
    }

    /// The statement's text as it was sent.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The parsed statement, for session statements and SQL queries.
    pub fn statement(&self) -> Option<&ast::Statement> {
        match &self.body {
            Body::Session(statement) => Some(statement),
            Body::Query { statement, .. } => match statement.as_ref() {
                DfStatement::Statement(statement) => Some(statement),
                _ => None,
            },
            _ => None,
        }
    }

    /// DataFusion's plan (unoptimized, parameters unbound), for queries and lookups.
    pub fn plan(&self) -> Option<&LogicalPlan> {
        match &self.body {
            Body::PointLookup { plan, .. } | Body::Query { plan, .. } => Some(plan),
            _ => None,
        }
    }

    /// The point lookup this statement is, if it is one.
    pub fn point_lookup(&self) -> Option<&PointLookup> {
        match &self.body {
            Body::PointLookup { lookup, .. } => Some(lookup),
            _ => None,
        }
    }

    /// The columns of the statement's rows (none for commands).
    pub fn schema(&self) -> SchemaRef {
        match &self.body {
            Body::PointLookup { lookup, .. } => Arc::clone(lookup.schema()),
            Body::Query { plan, .. } if command_tag(plan).is_none() => {
                Arc::new(plan.schema().as_arrow().clone())
            }
            Body::Subscribe(SubscribeStatement::Stream(plan)) => Arc::clone(plan.schema()),
            Body::Subscribe(SubscribeStatement::Cursor {
                statement: CursorStatement::Fetch { .. },
                schema,
            }) => Arc::clone(schema),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// The types of the parameters `$1, $2, ...` in order, as far as the plan tells
    /// them (`None`: any type; a lookup's is its key's type).
    pub fn parameter_types(&self) -> Result<Vec<Option<DataType>>, SqlError> {
        match &self.body {
            Body::PointLookup { lookup, .. } => Ok(vec![Some(lookup.key_type().clone())]),
            Body::Query { plan, .. } => {
                let types = plan.get_parameter_types()?;
                let mut ordered: Vec<(usize, Option<DataType>)> = types
                    .into_iter()
                    .filter_map(|(id, t)| Some((id.strip_prefix('$')?.parse().ok()?, t)))
                    .collect();
                ordered.sort_by_key(|(position, _)| *position);
                // `$3` without `$2`: the gap is a parameter of any type.
                let count = ordered.last().map_or(0, |(position, _)| *position);
                let mut result = vec![None; count];
                for (position, data_type) in ordered {
                    if let Some(slot) = position.checked_sub(1).and_then(|i| result.get_mut(i)) {
                        *slot = data_type;
                    }
                }
                Ok(result)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// What a read-only user may not run this as (`"DDL"`, `"writing"`, `"COPY"`), or
    /// `None` if the statement only reads or only changes the session.
    pub fn writes(&self) -> Option<&'static str> {
        match &self.body {
            Body::SourceDdl { .. } => Some("DDL"),
            Body::Query { statement, .. } => match statement.as_ref() {
                DfStatement::Statement(statement) if is_read(statement) => None,
                DfStatement::Statement(statement) => Some(statement_kind(statement)),
                DfStatement::Explain(explain) if !explain.options.analyze => None,
                DfStatement::CopyTo(_) => Some("COPY"),
                _ => Some("DDL"),
            },
            _ => None,
        }
    }
}

/// Statements that only read, or only change the session.
fn is_read(statement: &ast::Statement) -> bool {
    use ast::Statement as S;
    matches!(
        statement,
        S::Query(_)
            | S::ExplainTable { .. }
            | S::ShowVariable { .. }
            | S::ShowVariables { .. }
            | S::ShowTables { .. }
            | S::ShowColumns { .. }
            | S::ShowCreate { .. }
            | S::ShowFunctions { .. }
            | S::ShowSchemas { .. }
            | S::ShowDatabases { .. }
            | S::Set(_)
            | S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
            | S::Declare { .. }
            | S::Fetch { .. }
            | S::Close { .. }
            | S::Discard { .. }
            | S::Deallocate { .. }
            | S::Execute { .. }
    ) || matches!(
        statement,
        // EXPLAIN ANALYZE runs its statement.
        S::Prepare { statement, .. } | S::Explain { statement, .. } if is_read(statement)
    )
}

fn statement_kind(statement: &ast::Statement) -> &'static str {
    match statement {
        ast::Statement::Insert(_) | ast::Statement::Update(_) | ast::Statement::Delete(_) => {
            "writing"
        }
        ast::Statement::Copy { .. } => "COPY",
        _ => "DDL",
    }
}

/// Savepoint statements succeed as no-ops: nothing a client can run here writes, so
/// there is nothing to roll back (drivers such as psycopg with SQLAlchemy send them).
fn savepoint_tag(sql: &str) -> Option<&'static str> {
    let mut words = sql.split_whitespace().map(str::to_ascii_uppercase);
    match (words.next().as_deref(), words.next().as_deref()) {
        (Some("SAVEPOINT"), _) => Some("SAVEPOINT"),
        (Some("RELEASE"), _) => Some("RELEASE"),
        (Some("ROLLBACK"), Some("TO")) => Some("ROLLBACK"),
        _ => None,
    }
}

/// PostgreSQL's command tag for a plan that returns no rows, `None` for one that does.
fn command_tag(plan: &LogicalPlan) -> Option<&'static str> {
    match plan {
        LogicalPlan::Ddl(ddl) => Some(match ddl {
            DdlStatement::CreateExternalTable(_) | DdlStatement::CreateMemoryTable(_) => {
                "CREATE TABLE"
            }
            DdlStatement::CreateView(_) => "CREATE VIEW",
            DdlStatement::CreateCatalogSchema(_) => "CREATE SCHEMA",
            DdlStatement::CreateCatalog(_) => "CREATE DATABASE",
            DdlStatement::CreateIndex(_) => "CREATE INDEX",
            DdlStatement::DropTable(_) => "DROP TABLE",
            DdlStatement::DropView(_) => "DROP VIEW",
            DdlStatement::DropCatalogSchema(_) => "DROP SCHEMA",
            DdlStatement::CreateFunction(_) => "CREATE FUNCTION",
            DdlStatement::DropFunction(_) => "DROP FUNCTION",
        }),
        LogicalPlan::Dml(DmlStatement { op, .. }) => Some(match op {
            WriteOp::Insert(_) | WriteOp::Ctas => "INSERT",
            WriteOp::Delete => "DELETE",
            WriteOp::Update => "UPDATE",
            WriteOp::Truncate => "TRUNCATE TABLE",
            _ => "MERGE",
        }),
        LogicalPlan::Copy(_) => Some("COPY"),
        LogicalPlan::Statement(statement) => Some(match statement {
            PlanStatement::TransactionStart(_) => "BEGIN",
            PlanStatement::TransactionEnd(end) => match end.conclusion {
                TransactionConclusion::Commit => "COMMIT",
                TransactionConclusion::Rollback => "ROLLBACK",
            },
            PlanStatement::SetVariable(_) => "SET",
            PlanStatement::ResetVariable(_) => "RESET",
            PlanStatement::Prepare(_) => "PREPARE",
            PlanStatement::Execute(_) => return None,
            PlanStatement::Deallocate(_) => "DEALLOCATE",
        }),
        _ => None,
    }
}

impl Engine {
    /// Parses and classifies one statement for `ctx` (a session of this engine, or a
    /// context the engine's sources are registered in), holding it to the engine's
    /// limits. The result runs with [`execute`](Self::execute) as many times as
    /// needed; a point lookup then reads the key index without planning.
    ///
    /// ```no_run
    /// # async fn run(engine: &ktable::sql::Engine) -> Result<(), ktable::sql::SqlError> {
    /// use datafusion::common::{ParamValues, ScalarValue};
    /// use ktable::sql::StatementKind;
    ///
    /// let ctx = engine.session_context();
    /// let by_id = engine.prepare(&ctx, "SELECT name FROM users WHERE id = $1").await?;
    /// assert_eq!(by_id.kind(), StatementKind::PointLookup);
    /// let key = ParamValues::List(vec![ScalarValue::from("u1").into()]);
    /// let rows = engine.execute(&ctx, &by_id, key).await?;
    /// # Ok(()) }
    /// ```
    pub async fn prepare(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<Arc<Prepared>, SqlError> {
        let shape = Shape::of(sql);
        if let Some(Shape {
            text,
            literal: None,
            ..
        }) = &shape
        {
            if let Some(Some(known)) = self.shapes.get(text) {
                return Ok(known);
            }
        }
        let prepared = Arc::new(self.prepare_uncached(ctx, sql).await?);
        match shape {
            Some(Shape {
                text,
                literal: None,
                ..
            }) if prepared.kind() == StatementKind::PointLookup => {
                self.shapes.insert(text, Some(Arc::clone(&prepared)));
            }
            Some(Shape {
                text,
                literal: Some(_),
                ..
            }) if self.shapes.get(&text).is_none() => {
                // Plan the shape itself once: if it is a lookup, the next statement of
                // this shape is served without planning.
                let as_lookup = self
                    .prepare_uncached(ctx, &text)
                    .await
                    .ok()
                    .filter(|p| p.kind() == StatementKind::PointLookup)
                    .map(Arc::new);
                self.shapes.insert(text, as_lookup);
            }
            _ => {}
        }
        Ok(prepared)
    }

    /// A point lookup `sql` is known to be, without parsing: a statement of the same
    /// shape was prepared before. Returns the lookup and the key literal the text
    /// carried (`None` when the key comes as parameter `$1`).
    pub fn prepare_cached(&self, sql: &str) -> Option<(Arc<Prepared>, Option<String>)> {
        let shape = Shape::of(sql)?;
        let prepared = self.shapes.get(&shape.text)??;
        if shape.literal.is_some() {
            // The literal must be what the key is, as DataFusion would read it: a
            // string for a text key (a number would be compared as a number), digits
            // for an integer key (a string would be cast, and may fail to).
            let key_type = prepared.point_lookup()?.key_type();
            let integer_key = matches!(key_type, DataType::Int32 | DataType::Int64);
            if shape.literal_is_number != integer_key {
                return None;
            }
        }
        Some((prepared, shape.literal))
    }

    async fn prepare_uncached(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<Prepared, SqlError> {
        let prepared = |body| Prepared {
            sql: sql.into(),
            body,
        };
        if let Some(tag) = savepoint_tag(sql) {
            return Ok(prepared(Body::Savepoint(tag)));
        }
        if let Some(form) = subscribe_syntax::recognize(sql)
            .map_err(|e| SqlError::Subscribe(SubscribeError::Syntax(e)))?
        {
            let statement = match form {
                SubscribeForm::Stream(syntax) => {
                    SubscribeStatement::Stream(Arc::new(self.plan_subscription(ctx, syntax).await?))
                }
                SubscribeForm::Copy(syntax) => {
                    SubscribeStatement::Copy(Arc::new(self.plan_subscription(ctx, syntax).await?))
                }
                SubscribeForm::Declare {
                    cursor,
                    hold,
                    subscribe,
                } => SubscribeStatement::Declare {
                    cursor,
                    hold,
                    plan: Arc::new(self.plan_subscription(ctx, subscribe).await?),
                },
            };
            return Ok(prepared(Body::Subscribe(statement)));
        }
        // The guard's parse comes first: it bounds what every later parse of `sql` costs.
        let as_parsed = self.config.guard.parse(sql)?;
        // Source DDL that is not even SQL may still be DataFusion's own DDL (`CREATE
        // EXTERNAL TABLE`): its syntax error only stands if no parser takes it.
        let ddl_syntax_error = match ddl::parse(sql) {
            Ok(Some(ddl)) => {
                let tag = match &ddl {
                    Ddl::Create(def) => format!("CREATE {}", def.kind.to_string().to_uppercase()),
                    Ddl::Drop { kind, .. } => format!("DROP {}", kind.to_string().to_uppercase()),
                };
                return Ok(prepared(Body::SourceDdl { ddl, tag }));
            }
            Ok(None) => None,
            Err(error @ ddl::DdlError::Syntax(_)) => Some(error),
            Err(error) => return Err(error.into()),
        };
        let mut statement = match (self.parse(sql), ddl_syntax_error) {
            (Ok(Some(statement)), _) => statement,
            (Ok(None), _) => return Ok(prepared(Body::Empty)),
            (Err(_), Some(ddl_error)) => return Err(ddl_error.into()),
            (Err(error), None) => return Err(error),
        };
        self.config.guard.check_statement(&statement)?;
        if creates_object(&statement) {
            self.check_object_limit(ctx)?;
        }
        if let DfStatement::Statement(statement) = &statement {
            if is_session_statement(statement) {
                return Ok(prepared(Body::Session(statement.clone())));
            }
        }
        // datafusion-pg-catalog's parser replaces some client queries it knows
        // DataFusion cannot run with stand-ins (`WHERE false` stubs, and a partial
        // one for Grafana's search path that answers wrongly). ktable's rewrites run
        // some of them as written, with the real answer: a stand-in is the last resort.
        let as_written = self
            .parse_as_written(sql, as_parsed)
            .filter(|written| *written != statement);
        let plan = match as_written {
            Some(written) => match self.plan_analyzed(ctx, &written).await {
                Ok(plan) => {
                    statement = written;
                    plan
                }
                Err(_) => ctx.state().statement_to_plan(statement.clone()).await?,
            },
            None => ctx.state().statement_to_plan(statement.clone()).await?,
        };
        if let Some(lookup) = PointLookup::recognize(&plan) {
            return Ok(prepared(Body::PointLookup {
                lookup: Arc::new(lookup),
                plan,
            }));
        }
        Ok(prepared(Body::Query {
            statement: Box::new(statement),
            plan,
        }))
    }

    /// One statement of `sql` as PostgreSQL's parser (with the catalog rewrites and
    /// stand-ins) reads it, or DataFusion's parser for its own statements; `None` for
    /// no statement.
    pub(super) fn parse(&self, sql: &str) -> Result<Option<DfStatement>, SqlError> {
        self.with_postgres_rewrites(sql, self.pg_parser.parse(sql))
    }

    /// `sql` (`parsed` as PostgreSQL's parser reads it) with datafusion-pg-catalog's
    /// rewrites but without its stand-ins for whole client queries; `None` if it does
    /// not parse so.
    fn parse_as_written(
        &self,
        sql: &str,
        parsed: Result<Vec<ast::Statement>, ParserError>,
    ) -> Option<DfStatement> {
        let statements = parsed
            .ok()?
            .into_iter()
            .map(|s| self.pg_parser.rewrite(s))
            .collect();
        self.with_postgres_rewrites(sql, Ok(statements)).ok()?
    }

    /// `statement`'s plan, which DataFusion's analyzer (type coercion, subquery
    /// checks) has accepted.
    async fn plan_analyzed(
        &self,
        ctx: &SessionContext,
        statement: &DfStatement,
    ) -> Result<LogicalPlan, SqlError> {
        self.config.guard.check_statement(statement)?;
        let state = ctx.state();
        let plan = state.statement_to_plan(statement.clone()).await?;
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})?;
        Ok(plan)
    }

    /// One statement of the parse of `sql`, named and rewritten as PostgreSQL reads
    /// it; DataFusion's parser for its own statements when PostgreSQL's refuses `sql`.
    fn with_postgres_rewrites(
        &self,
        sql: &str,
        parsed: Result<Vec<ast::Statement>, ParserError>,
    ) -> Result<Option<DfStatement>, SqlError> {
        let state = self.context().state_ref();
        let is_table_function = |name: &str| state.read().table_functions().contains_key(name);
        let mut statements: Vec<DfStatement> = match parsed {
            Ok(statements) => statements
                .into_iter()
                .map(|mut s| {
                    // Result columns named as PostgreSQL names them (`count`, not
                    // `count(*)`): clients show these names to people.
                    super::pg_compat::name_columns_like_postgres(&mut s);
                    // Then PostgreSQL syntax DataFusion plans otherwise (functions in
                    // FROM, `(expr).field`, `ARRAY(subquery)`, ...).
                    super::pg_compat::rewrite_postgres_syntax(&mut s, &is_table_function);
                    DfStatement::Statement(Box::new(s))
                })
                .collect(),
            Err(postgres_error) => {
                match super::dialect::parse_datafusion(sql)
                    .ok_or(SqlError::Refused(Refusal::TooComplex))?
                {
                    Ok(statements) => statements.into_iter().collect(),
                    // PostgreSQL's message: the client writes PostgreSQL.
                    Err(_) => {
                        return Err(DataFusionError::SQL(Box::new(postgres_error), None).into())
                    }
                }
            }
        };
        match statements.len() {
            0 => Ok(None),
            1 => Ok(statements.pop()),
            _ => Err(SqlError::MultipleStatements),
        }
    }

    /// Runs a prepared statement on `ctx` with `params` bound to `$1, $2, ...`.
    ///
    /// Session statements (`SET`, cursors, transactions) run as DataFusion runs them;
    /// a wire front end answers them itself instead.
    pub async fn execute(
        &self,
        ctx: &SessionContext,
        prepared: &Prepared,
        params: ParamValues,
    ) -> Result<Output, SqlError> {
        match &prepared.body {
            Body::Empty => Ok(Output::Empty),
            Body::Savepoint(tag) => Ok(Output::Command((*tag).to_string())),
            Body::SourceDdl { ddl, tag } => {
                self.run_ddl(ctx, ddl.clone()).await?;
                Ok(Output::Command(tag.clone()))
            }
            Body::Session(_) => {
                let plan = ctx.state().create_logical_plan(prepared.sql()).await?;
                self.run_plan(ctx, plan).await
            }
            Body::PointLookup { lookup, plan } => {
                let key = match &params {
                    ParamValues::List(values) => values.first().map(|v| v.value().clone()),
                    ParamValues::Map(values) => values.get("$1").map(|v| v.value().clone()),
                };
                let key = match key {
                    Some(
                        ScalarValue::Utf8(key)
                        | ScalarValue::Utf8View(key)
                        | ScalarValue::LargeUtf8(key),
                    ) => key,
                    Some(other) if other.is_null() => None,
                    // An integer key is read by its decimal text (see `PointLookup::read`).
                    Some(ScalarValue::Int64(Some(key))) => Some(key.to_string()),
                    Some(ScalarValue::Int32(Some(key))) => Some(key.to_string()),
                    Some(ScalarValue::Int16(Some(key))) => Some(key.to_string()),
                    // A key of another type compares as DataFusion compares it.
                    _ => {
                        let plan = plan.clone().replace_params_with_values(&params)?;
                        return self.run_plan(ctx, plan).await;
                    }
                };
                let rows = lookup.read(self, key.as_deref())?;
                Ok(Output::Rows(one_batch(rows)))
            }
            Body::Query { plan, .. } => {
                let plan = plan.clone().replace_params_with_values(&params)?;
                self.run_plan(ctx, plan).await
            }
            Body::Subscribe(SubscribeStatement::Stream(plan)) => {
                Ok(Output::Rows(self.start_subscription(plan)?))
            }
            // Cursors and COPY belong to a client session.
            Body::Subscribe(_) => Err(SqlError::SessionOnly(prepared.sql().to_string())),
        }
    }

    /// The rows of a point lookup for `key` (`None`: SQL NULL, no row), read from the
    /// table's index: the fast path of [`execute`](Self::execute), without a stream.
    pub fn lookup(&self, prepared: &Prepared, key: Option<&str>) -> Result<RecordBatch, SqlError> {
        match &prepared.body {
            Body::PointLookup { lookup, .. } => lookup.read(self, key),
            _ => Err(SqlError::DataFusion(DataFusionError::Internal(
                "not a point lookup".into(),
            ))),
        }
    }

    /// Runs a plan: a command gives its tag (DDL empties the shape cache, which may
    /// name what it changed); a query its rows.
    async fn run_plan(&self, ctx: &SessionContext, plan: LogicalPlan) -> Result<Output, SqlError> {
        let tag = command_tag(&plan);
        let is_ddl = matches!(plan, LogicalPlan::Ddl(_));
        let counts_rows = matches!(plan, LogicalPlan::Dml(_) | LogicalPlan::Copy(_));
        let frame = ctx.execute_logical_plan(plan).await?;
        if is_ddl {
            self.shapes.clear();
        }
        let Some(tag) = tag else {
            return Ok(Output::Rows(frame.execute_stream().await?));
        };
        if !counts_rows {
            return Ok(Output::Command(tag.to_string()));
        }
        let batches = frame.collect().await?;
        let count: u64 = batches
            .iter()
            .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
            .filter(|counts| !counts.is_empty() && counts.is_valid(0))
            .map(|counts| counts.value(0))
            .sum();
        Ok(Output::Command(match tag {
            // PostgreSQL's INSERT tag carries an oid, always 0 today.
            "INSERT" => format!("INSERT 0 {count}"),
            other => format!("{other} {count}"),
        }))
    }
}

fn one_batch(batch: RecordBatch) -> SendableRecordBatchStream {
    let schema = batch.schema();
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::once(async move { Ok(batch) }),
    ))
}
