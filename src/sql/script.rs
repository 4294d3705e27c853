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
    let mut offsets = Offsets::new(text);
    let mut statements = Vec::new();
    let mut first: Option<(u64, usize)> = None;
    for token in &tokens {
        match &token.token {
            Token::SemiColon => {
                if let Some((line, start)) = first.take() {
                    let end = offsets.at(token.span.start.line, token.span.start.column);
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
                        offsets.at(token.span.start.line, token.span.start.column),
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

/// Byte offsets in a text of the tokenizer's locations (1-based lines and 1-based
/// character columns), asked for in increasing order: the position moves forward
/// only, so a text is walked once however many statements it holds (a megabyte of
/// `SELECT 1;` on one line would otherwise be walked from the line's start for each
/// of its hundred thousand statements).
struct Offsets<'a> {
    text: &'a str,
    line: u64,
    column: u64,
    byte: usize,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            line: 1,
            column: 1,
            byte: 0,
        }
    }

    /// The byte offset of `line`:`column` (the text's end past it); never behind
    /// the offset asked before.
    fn at(&mut self, line: u64, column: u64) -> usize {
        let mut chars = self.text[self.byte..].char_indices();
        while (self.line, self.column) < (line, column) {
            let Some((_, c)) = chars.next() else {
                self.byte = self.text.len();
                return self.byte;
            };
            self.byte += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.byte
    }
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
    fn statements_after_wide_characters_start_where_they_do() {
        let statements = split("SELECT 'é'; SELECT 'ü€' ;\n  SELECT '😀'; SELECT 4").unwrap();
        let sql: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            ["SELECT 'é'", "SELECT 'ü€'", "SELECT '😀'", "SELECT 4"]
        );
        let lines: Vec<u64> = statements.iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 1, 2, 2]);
    }

    #[test]
    fn a_long_line_of_statements_is_split_whole() {
        let text = "SELECT 1;".repeat(100_000);
        let statements = split(&text).unwrap();
        assert_eq!(statements.len(), 100_000);
        assert!(statements
            .iter()
            .all(|s| s.sql == "SELECT 1" && s.line == 1));
    }

    #[test]
    fn an_unterminated_string_is_reported_with_its_line() {
        let (line, message) = split("SELECT 1;\nSELECT 'oops").unwrap_err();
        assert_eq!(line, 2);
        assert!(message.to_lowercase().contains("unterminated"), "{message}");
    }
}
