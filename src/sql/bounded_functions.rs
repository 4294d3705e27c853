//! String functions whose output can be far larger than their input, held to the
//! per-query memory limit before they allocate.
//!
//! DataFusion's memory pool bounds what operators hold (aggregates, joins, sorts),
//! not what a scalar function returns: `SELECT length(repeat('x', 1000000000))` built
//! a one-gigabyte string per row, peaked at 4.7 GB and ran past the query timeout,
//! since a single call never yields. Each function here is DataFusion's own, wrapped:
//! before a call, an upper bound on the bytes it will produce for the whole batch is
//! computed from its arguments, and a call over the limit fails with
//! `ResourcesExhausted` (SQLSTATE 53200, out of memory) instead of allocating.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's bytes times `n`.
    Repeat,
    /// `lpad(text, length [, fill])`, `rpad`: `length` characters of up to four bytes.
    Pad,
}

/// Wraps DataFusion's `repeat`, `lpad` and `rpad` in `ctx` so that no call produces
/// more than `limit` bytes.
pub(crate) fn install(ctx: &SessionContext, limit: usize) {
    for (name, growth) in [
        ("repeat", Growth::Repeat),
        ("lpad", Growth::Pad),
        ("rpad", Growth::Pad),
    ] {
        let Ok(inner) = ctx.udf(name) else {
            // Not registered in this build of DataFusion: nothing to bound.
            continue;
        };
        ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
            inner,
            growth,
            limit,
        }));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    limit: usize,
}

impl Bounded {
    /// Bytes the call may produce for all its rows, at most.
    fn output_bound(&self, args: &ScalarFunctionArgs) -> u128 {
        let rows = args.number_rows.max(1) as u128;
        let int_arg = |i: usize| args.args.get(i).map_or(0, max_int).max(0) as u128;
        let text_arg = |i: usize| args.args.get(i).map_or(0, max_bytes) as u128;
        let per_row = match self.growth {
            Growth::Repeat => text_arg(0).saturating_mul(int_arg(1)),
            Growth::Pad => int_arg(1).saturating_mul(4).saturating_add(text_arg(0)),
        };
        rows.saturating_mul(per_row)
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bound = self.output_bound(&args);
        if bound > self.limit as u128 {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "out of memory: {}() would produce up to {bound} bytes, over the query's \
                 limit of {} (query_memory_limit)",
                self.inner.name(),
                self.limit
            )));
        }
        self.inner.invoke_with_args(args)
    }
}

/// The largest integer of an argument (0 for NULLs and other types).
fn max_int(value: &ColumnarValue) -> i64 {
    match value {
        ColumnarValue::Scalar(scalar) => match scalar {
            ScalarValue::Int64(Some(v)) => *v,
            ScalarValue::Int32(Some(v)) => i64::from(*v),
            ScalarValue::Int16(Some(v)) => i64::from(*v),
            ScalarValue::Int8(Some(v)) => i64::from(*v),
            ScalarValue::UInt32(Some(v)) => i64::from(*v),
            ScalarValue::UInt64(Some(v)) => i64::try_from(*v).unwrap_or(i64::MAX),
            _ => 0,
        },
        ColumnarValue::Array(array) => match array.data_type() {
            DataType::Int64 => arrow::compute::max(array.as_primitive::<Int64Type>()).unwrap_or(0),
            // The signatures coerce counts to Int64; anything else is bounded by its type.
            DataType::Int8 | DataType::Int16 | DataType::Int32 => i64::from(i32::MAX),
            _ => 0,
        },
    }
}

/// The longest string of an argument, in bytes (0 for NULLs and other types).
fn max_bytes(value: &ColumnarValue) -> usize {
    match value {
        ColumnarValue::Scalar(scalar) => scalar.try_as_str().flatten().map_or(0, str::len),
        ColumnarValue::Array(array) => match array.data_type() {
            DataType::Utf8 => longest(array.as_string::<i32>().iter()),
            DataType::LargeUtf8 => longest(array.as_string::<i64>().iter()),
            DataType::Utf8View => longest(array.as_string_view().iter()),
            _ => 0,
        },
    }
}

fn longest<'a>(values: impl Iterator<Item = Option<&'a str>>) -> usize {
    values.flatten().map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<arrow::array::RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn calls_over_the_limit_fail_before_allocating() {
        let ctx = SessionContext::new();
        install(&ctx, 1 << 20);
        for sql in [
            "SELECT length(repeat('x', 1000000000))",
            "SELECT length(lpad('x', 1000000000))",
            "SELECT length(rpad('x', 1000000000, 'ab'))",
            // The bound covers every row of a batch, not one value.
            "SELECT length(repeat(CAST(value AS VARCHAR), 300)) FROM generate_series(1000, 5000)",
        ] {
            let error = run(&ctx, sql).await.expect_err(sql);
            assert!(
                matches!(error.find_root(), DataFusionError::ResourcesExhausted(_)),
                "{sql}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn calls_within_the_limit_answer_as_before() {
        let bounded = SessionContext::new();
        install(&bounded, 1 << 20);
        let plain = SessionContext::new();
        for sql in [
            "SELECT repeat('ab', 3), lpad('7', 3, '0'), rpad('x', 4), lpad('abc', 2)",
            "SELECT repeat(CAST(v AS VARCHAR), 2) FROM (VALUES (1), (NULL), (33)) AS t(v)",
        ] {
            let expected = run(&plain, sql).await.expect(sql);
            let got = run(&bounded, sql).await.expect(sql);
            assert_eq!(got, expected, "{sql}");
        }
    }
}
