//! Splitting SQL text into statements, each with the line it starts on.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStatement {
    /// The line (1-based) the statement starts on.
    pub line: u64,
    /// The statement, without its terminating semicolon.
    pub sql: String,
}

/// Splits `text` at semicolons outside strings, identifiers and comments. Statements
/// that are only whitespace or comments are dropped. On a tokenizer error (say, an
/// unterminated string) returns the line and the message.
pub fn split(text: &str) -> Result<Vec<ScriptStatement>, (u64, String)> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| (e.location.line, e.message.clone()))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // Tokenizer locations are 1-based lines and 1-based character columns.
    let offset = |line: u64, column: u64| -> usize {
        let start = line_starts
            .get(line.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(text.len());
        text[start..]
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(text.len(), |(i, _)| start + i)
    };
    let mut statements = Vec::new();
    let mut first: Option<(u64, usize)> = None;
    for token in &tokens {
        match &token.token {
            Token::SemiColon => {
                if let Some((line, start)) = first.take() {
                    let end = offset(token.span.start.line, token.span.start.column);
                    statements.push(ScriptStatement {
                        line,
                        sql: text[start..end].trim().to_string(),
                    });
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => {
                if first.is_none() {
                    first = Some((
                        token.span.start.line,
                        offset(token.span.start.line, token.span.start.column),
                    ));
                }
            }
        }
    }
    if let Some((line, start)) = first {
        statements.push(ScriptStatement {
            line,
            sql: text[start..].trim().to_string(),
        });
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_keep_their_lines() {
        let text = "-- header; not a statement\nCREATE TABLE a (x TEXT PRIMARY KEY)\n  WITH (topic = 'a;b');\n\n/* c; */ SELECT ';' ;\nSELECT 2";
        let statements = split(text).unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0].line, 2);
        assert!(statements[0].sql.ends_with("WITH (topic = 'a;b')"));
        assert_eq!(
            statements[1],
            ScriptStatement {
                line: 5,
                sql: "SELECT ';'".into()
            }
        );
        assert_eq!(
            statements[2],
            ScriptStatement {
                line: 6,
                sql: "SELECT 2".into()
            }
        );
    }

    #[test]
    fn an_unterminated_string_is_reported_with_its_line() {
        let (line, message) = split("SELECT 1;\nSELECT 'oops").unwrap_err();
        assert_eq!(line, 2);
        assert!(message.to_lowercase().contains("unterminated"), "{message}");
    }
}
