//! Statement shapes: the text of a statement with its string literals taken out, and a
//! cache from shapes to what they were classified as.
//!
//! psql, BI tools and `pgbench -M simple` send lookups as literal text (`SELECT ...
//! WHERE id = 'u42'`), and drivers that parse anew on every execution (psycopg with
//! `prepare=False`, pgjdbc before its `prepareThreshold`, most ORMs) send the same
//! `... WHERE id = $1` over and over. Parsing and planning either costs ~150 µs, seven
//! times the lookup itself. A statement's shape is computed from its tokens alone (no
//! parse): the literal `'u42'` becomes `$1`, whitespace and case of keywords stop
//! mattering. The first statement of a shape is planned once more as the shape itself;
//! if that is a point lookup, every later statement of the shape is served from the
//! cache with its literal as the key, with no parse and no plan.
//!
//! Only one literal compared with `=` is ever taken out (a string, or digits alone),
//! and only a shape that plans to exactly `key = $1` (a string literal for a text key,
//! digits for an INT or BIGINT key, the columns as they are) is served:
//! every other statement is planned as written, so a cached answer is the answer
//! DataFusion would give (tested against it). The cache is emptied whenever any
//! relation is created or dropped.

use super::statement::Prepared;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Shapes kept at most; the cache starts over when full (shapes are few in practice:
/// one per statement an application or a tool sends).
const MAX_SHAPES: usize = 4096;

/// A statement's shape and the literal taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The tokens, separated by single spaces, the literal replaced by `$1`.
    pub(crate) text: String,
    /// The literal's value, if one was taken out.
    pub(crate) literal: Option<String>,
    /// Whether that literal was a number (digits alone) rather than a string.
    pub(crate) literal_is_number: bool,
}

impl Shape {
    /// The shape of `sql`, if it is one statement that tokenizes. A statement with
    /// parameters of its own keeps its literals; otherwise the one literal (a string,
    /// or digits alone) that follows `=` in a `SELECT` is taken out (none when there
    /// are several).
    pub(crate) fn of(sql: &str) -> Option<Shape> {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
        let mut words = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_)));
        let starts_with_select =
            matches!(words.next(), Some(Token::Word(w)) if w.keyword == Keyword::SELECT);
        let has_placeholders = tokens.iter().any(|t| matches!(t, Token::Placeholder(_)));
        let literal_at = if starts_with_select && !has_placeholders {
            the_literal_compared(&tokens)
        } else {
            None
        };
        let mut text = String::with_capacity(sql.len() + 8);
        let mut literal = None;
        let mut literal_is_number = false;
        let mut previous_semicolon = false;
        for (i, token) in tokens.iter().enumerate() {
            if previous_semicolon && !matches!(token, Token::Whitespace(_)) {
                return None; // more than one statement
            }
            match token {
                Token::Whitespace(_) => continue,
                Token::SemiColon => {
                    previous_semicolon = true;
                    continue;
                }
                _ => {}
            }
            if !text.is_empty() {
                text.push(' ');
            }
            match (token, literal_at) {
                (Token::SingleQuotedString(value), Some(at)) if at == i => {
                    text.push_str("$1");
                    literal = Some(value.clone());
                }
                (Token::Number(value, false), Some(at)) if at == i => {
                    text.push_str("$1");
                    literal = Some(value.clone());
                    literal_is_number = true;
                }
                // Keywords compare without case; identifiers and literals keep theirs.
                (Token::Word(word), _) if word.quote_style.is_none() => {
                    let _ = write!(text, "{}", word.value.to_ascii_lowercase());
                }
                _ => {
                    let _ = write!(text, "{token}");
                }
            }
        }
        Some(Shape {
            text,
            literal,
            literal_is_number,
        })
    }
}

/// The index of the only string literal of `tokens`, if it directly follows `=`, or
/// else of the only number of digits alone that directly follows `=` (numbers
/// elsewhere, `LIMIT 10`, stay in the shape).
fn the_literal_compared(tokens: &[Token]) -> Option<usize> {
    let mut found = None;
    let mut numbers = Vec::new();
    let mut previous: Option<&Token> = None;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Whitespace(_) => continue,
            Token::SingleQuotedString(_) => {
                if found.is_some() || !matches!(previous, Some(Token::Eq)) {
                    return None;
                }
                found = Some(i);
            }
            Token::Number(digits, false)
                if matches!(previous, Some(Token::Eq))
                    && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                numbers.push(i);
            }
            Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::DollarQuotedString(_) => return None,
            _ => {}
        }
        previous = Some(token);
    }
    match (found, numbers.as_slice()) {
        (Some(string), []) => Some(string),
        (None, [number]) => Some(*number),
        _ => None,
    }
}

/// What a shape was classified as: a statement to serve without planning, or `None`
/// for a shape that is planned as written every time.
#[derive(Default)]
pub(crate) struct ShapeCache {
    shapes: RwLock<HashMap<String, Option<Arc<Prepared>>>>,
}

impl ShapeCache {
    /// The classification of `shape`: `None` if never seen, `Some(None)` if it is not
    /// served from the cache.
    pub(crate) fn get(&self, shape: &str) -> Option<Option<Arc<Prepared>>> {
        self.shapes.read().get(shape).cloned()
    }

    /// Records what `shape` is.
    pub(crate) fn insert(&self, shape: String, prepared: Option<Arc<Prepared>>) {
        let mut shapes = self.shapes.write();
        if shapes.len() >= MAX_SHAPES {
            shapes.clear();
        }
        shapes.insert(shape, prepared);
    }

    /// Forgets every shape: relations were created or dropped.
    pub(crate) fn clear(&self) {
        self.shapes.write().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> Option<(String, Option<String>)> {
        Shape::of(sql).map(|s| (s.text, s.literal))
    }

    #[test]
    fn a_compared_literal_becomes_the_first_parameter() {
        let (text, literal) = shape("SELECT name FROM users WHERE id = 'u1'").expect("a shape");
        assert_eq!(text, "select name from users where id = $1");
        assert_eq!(literal.as_deref(), Some("u1"));
        // Layout, keyword case and a final semicolon do not change the shape.
        let same = shape("select  name\n FROM users WHERE id='it''s';").expect("a shape");
        assert_eq!(same.0, text);
        assert_eq!(same.1.as_deref(), Some("it's"));
    }

    #[test]
    fn quoted_identifiers_and_other_literals_stay() {
        let (text, literal) = shape(r#"SELECT "Name" FROM users WHERE id = 'a' LIMIT 1"#).unwrap();
        assert_eq!(text, r#"select "Name" from users where id = $1 limit 1"#);
        assert_eq!(literal.as_deref(), Some("a"));
        // Two literals, a literal not after `=`, escapes: nothing taken out.
        for sql in [
            "SELECT name FROM users WHERE id = 'a' OR id = 'b'",
            "SELECT name FROM users WHERE id IN ('a')",
            "SELECT name FROM users WHERE id = E'a'",
            "SELECT name FROM users WHERE id = $1",
            "UPDATE users SET name = 'x'",
        ] {
            assert_eq!(shape(sql).and_then(|s| s.1), None, "{sql}");
        }
    }

    #[test]
    fn a_compared_number_of_digits_becomes_the_first_parameter() {
        let found = Shape::of("SELECT name FROM users WHERE id = 42 LIMIT 5").expect("a shape");
        assert_eq!(found.text, "select name from users where id = $1 limit 5");
        assert_eq!(found.literal.as_deref(), Some("42"));
        assert!(found.literal_is_number);
        assert!(
            !Shape::of("SELECT name FROM users WHERE id = '42'")
                .unwrap()
                .literal_is_number
        );
        // Signs, decimals, exponents, two numbers, a number beside a string: all stay.
        for sql in [
            "SELECT name FROM users WHERE id = -42",
            "SELECT name FROM users WHERE id = 4.2",
            "SELECT name FROM users WHERE id = 1e3",
            "SELECT name FROM users WHERE id = 1 AND age = 2",
            "SELECT name FROM users WHERE id = 1 AND name = 'a'",
        ] {
            assert_eq!(shape(sql).and_then(|s| s.1), None, "{sql}");
        }
    }

    #[test]
    fn several_statements_have_no_shape() {
        assert_eq!(shape("SELECT 1; SELECT 2"), None);
        assert!(shape("SELECT 1;").is_some());
    }
}
