//! SQL column types of source DDL, as Arrow types.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};

/// How a declared column type is stored and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// A value converted to this Arrow type.
    Arrow(DataType),
    /// JSON kept as text (`JSON`, `JSONB`): nested objects and arrays, queryable with
    /// string and JSON functions.
    Json,
}

/// Maps a SQL type to its storage, or says why it is not supported.
pub fn column_type(sql: &SqlType) -> Result<ColumnType, String> {
    use SqlType as T;
    let arrow = match sql {
        T::Text
        | T::String(_)
        | T::Varchar(_)
        | T::CharacterVarying(_)
        | T::CharVarying(_)
        | T::Char(_)
        | T::Character(_)
        | T::Uuid => DataType::Utf8,
        T::Boolean | T::Bool => DataType::Boolean,
        T::SmallInt(_) | T::Int2(_) => DataType::Int16,
        T::Int(_) | T::Integer(_) | T::Int4(_) => DataType::Int32,
        T::BigInt(_) | T::Int8(_) => DataType::Int64,
        T::Real | T::Float4 => DataType::Float32,
        T::Double(_) | T::DoublePrecision | T::Float8 | T::Float(_) => DataType::Float64,
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => decimal(info)?,
        T::Date => DataType::Date32,
        T::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        T::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Millisecond, None),
        T::JSON | T::JSONB => return Ok(ColumnType::Json),
        other => return Err(format!("column type {other} is not supported")),
    };
    Ok(ColumnType::Arrow(arrow))
}

/// DECIMAL(p, s) as Decimal128; a bare DECIMAL is DECIMAL(38, 10).
fn decimal(info: &ExactNumberInfo) -> Result<DataType, String> {
    let (precision, scale) = match *info {
        ExactNumberInfo::None => (38, 10),
        ExactNumberInfo::Precision(p) => (p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (p, s),
    };
    if !(1..=38).contains(&precision) || scale < 0 || scale as u64 > precision {
        return Err(format!("DECIMAL({precision}, {scale}) is out of range (precision 1..=38, 0 <= scale <= precision)"));
    }
    Ok(DataType::Decimal128(precision as u8, scale as i8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::CharacterLength;

    #[test]
    fn common_types_map_to_arrow() {
        assert_eq!(
            column_type(&SqlType::Text),
            Ok(ColumnType::Arrow(DataType::Utf8))
        );
        assert_eq!(
            column_type(&SqlType::Varchar(Some(CharacterLength::IntegerLength {
                length: 5,
                unit: None
            }))),
            Ok(ColumnType::Arrow(DataType::Utf8))
        );
        assert_eq!(
            column_type(&SqlType::Int(None)),
            Ok(ColumnType::Arrow(DataType::Int32))
        );
        assert_eq!(
            column_type(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(10, 2))),
            Ok(ColumnType::Arrow(DataType::Decimal128(10, 2)))
        );
        assert_eq!(column_type(&SqlType::JSONB), Ok(ColumnType::Json));
        assert!(column_type(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(50, 2))).is_err());
        assert!(column_type(&SqlType::Bytea).is_err());
    }
}
