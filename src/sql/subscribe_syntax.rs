//! The syntax of `SUBSCRIBE` and of the cursor statements that read it, recognized
//! before the PostgreSQL parser (which knows neither) sees the text.
//!
//! A small hand tokenizer reads the leading keywords and options; the query inside
//! `SUBSCRIBE (...)` is cut out as text and planned by the normal path, so it is
//! PostgreSQL's SQL with the engine's limits. The grammar (keywords in any case):
//!
//! ```text
//! SUBSCRIBE [TO] { name | ( SELECT ... ) }
//!     [WITH ( SNAPSHOT [=] {true|false}, PROGRESS [=] {true|false} )]
//!     [AS OF OFFSETS ( partition:offset [, ...] )]
//! DECLARE name [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR SUBSCRIBE ...
//! COPY ( SUBSCRIBE ... ) TO STDOUT [[WITH] ( FORMAT text )]
//! FETCH [FORWARD] [n | ALL | NEXT] [FROM | IN] name [WITH ( timeout [=] '1s' )]
//! CLOSE name
//! ```
//!
//! `AS OF OFFSETS` resumes a subscription: changes after those offsets (as the
//! subscription's `ktable_partition`/`ktable_offset` columns gave them), no snapshot.

use crate::changefeed::Offsets;
use std::time::Duration;

/// What a `SUBSCRIBE` asks for, before it is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeSyntax {
    /// The query over one table or stream (`SELECT * FROM name` for a bare name).
    pub query: String,
    /// Send the current rows first (`None`: the default, yes for tables, no for
    /// streams).
    pub snapshot: Option<bool>,
    /// Send progress rows.
    pub progress: bool,
    /// Resume after these offsets.
    pub as_of: Option<Offsets>,
}

/// A statement of the `SUBSCRIBE` family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeForm {
    /// `SUBSCRIBE ...`: rows streamed as changes happen.
    Stream(SubscribeSyntax),
    /// `COPY (SUBSCRIBE ...) TO STDOUT`.
    Copy(SubscribeSyntax),
    /// `DECLARE c CURSOR FOR SUBSCRIBE ...`.
    Declare {
        /// The cursor's name.
        cursor: String,
        /// `WITH HOLD`: the cursor outlives the transaction.
        hold: bool,
        /// The subscription.
        subscribe: SubscribeSyntax,
    },
}

/// `FETCH` or `CLOSE` of a cursor (a subscription's, if the session has one by that
/// name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorStatement {
    /// `FETCH`.
    Fetch {
        /// The cursor.
        cursor: String,
        /// At most this many rows (`None`: ALL).
        count: Option<u64>,
        /// How long to wait for a first row (`None`: until one comes).
        timeout: Option<Duration>,
    },
    /// `CLOSE`.
    Close {
        /// The cursor.
        cursor: String,
    },
}

impl CursorStatement {
    /// The cursor named.
    pub fn cursor(&self) -> &str {
        match self {
            CursorStatement::Fetch { cursor, .. } | CursorStatement::Close { cursor } => cursor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword or unquoted name, as written.
    Word(String),
    /// A quoted name.
    Quoted(String),
    /// A string literal.
    Str(String),
    Number(String),
    Punct(char),
    /// A parenthesized part, as text (without the parentheses).
    Group(String),
}

/// Splits `sql` into tokens; a parenthesized part is one token, cut out whole.
fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c == '\'' || c == '"' {
            let (text, next) = quoted(&chars, i)?;
            i = next;
            tokens.push(if c == '\'' {
                Token::Str(text)
            } else {
                Token::Quoted(text)
            });
        } else if c == '(' {
            let end = closing_paren(&chars, i)?;
            tokens.push(Token::Group(chars[i + 1..end].iter().collect()));
            i = end + 1;
        } else if c == ';' {
            // A final semicolon ends the statement; anything after is another one.
            if chars[i + 1..].iter().any(|c| !c.is_whitespace()) {
                return Err("one statement at a time".into());
            }
            break;
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(tokens)
}

/// The text of the quoted token starting at `start`, and where it ends.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                text.push(quote);
                i += 2;
                continue;
            }
            return Ok((text, i + 1));
        }
        text.push(chars[i]);
        i += 1;
    }
    Err("unterminated quoted string".into())
}

/// The position of the parenthesis closing the one at `open`, skipping quotes.
fn closing_paren(chars: &[char], open: usize) -> Result<usize, String> {
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            '\'' | '"' => {
                i = quoted(chars, i)?.1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Err("unbalanced parentheses".into())
}

/// Tokens read front to back.
struct Tokens {
    tokens: Vec<Token>,
    at: usize,
}

impl Tokens {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    /// Takes the next token if it is the keyword `word`.
    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, word: &str) -> Result<(), String> {
        if self.keyword(word) {
            Ok(())
        } else {
            Err(format!("expected {word}{}", self.near()))
        }
    }

    /// A name: a word (folded to lower case, as PostgreSQL does) or a quoted name.
    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w.to_lowercase()),
            Some(Token::Quoted(q)) => Ok(q),
            _ => Err(format!("expected a name{}", self.near())),
        }
    }

    fn near(&self) -> String {
        match self.tokens.get(self.at.saturating_sub(1)) {
            Some(token) => format!(" near {token:?}"),
            None => " at the end".into(),
        }
    }

    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }
}

/// Whether the first word of `sql` is `word`.
fn starts_with_word(sql: &str, word: &str) -> bool {
    let sql = sql.trim_start();
    sql.len() >= word.len()
        && sql.is_char_boundary(word.len())
        && sql[..word.len()].eq_ignore_ascii_case(word)
        && !sql[word.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The `SUBSCRIBE` statement `sql` is, `None` if it is none (without tokenizing
/// statements that cannot be one), or the syntax error in it.
pub fn recognize(sql: &str) -> Result<Option<SubscribeForm>, String> {
    let trimmed = sql.trim_start();
    if starts_with_word(trimmed, "SUBSCRIBE") {
        let mut tokens = Tokens {
            tokens: tokenize(trimmed)?,
            at: 1,
        };
        return Ok(Some(SubscribeForm::Stream(subscribe(&mut tokens)?)));
    }
    // Other COPY and DECLARE statements are the PostgreSQL parser's, errors included.
    if starts_with_word(trimmed, "COPY") {
        let Ok(tokens) = tokenize(trimmed) else {
            return Ok(None);
        };
        let Some(Token::Group(inner)) = tokens.get(1) else {
            return Ok(None);
        };
        if !starts_with_word(inner, "SUBSCRIBE") {
            return Ok(None);
        }
        let mut inner_tokens = Tokens {
            tokens: tokenize(inner)?,
            at: 1,
        };
        let syntax = subscribe(&mut inner_tokens)?;
        let mut rest = Tokens { tokens, at: 2 };
        rest.expect("TO")?;
        rest.expect("STDOUT")?;
        rest.keyword("WITH");
        if let Some(Token::Group(options)) = rest.peek().cloned() {
            rest.at += 1;
            for (name, value) in options_of(&options)? {
                let text_format = name == "format" && value.eq_ignore_ascii_case("text");
                if !text_format {
                    return Err(format!(
                        "COPY (SUBSCRIBE ...) supports FORMAT text only, not {name} {value}"
                    ));
                }
            }
        }
        if !rest.done() {
            return Err(format!("unexpected text after TO STDOUT{}", rest.near()));
        }
        return Ok(Some(SubscribeForm::Copy(syntax)));
    }
    if starts_with_word(trimmed, "DECLARE") {
        let Ok(tokens) = tokenize(trimmed) else {
            return Ok(None);
        };
        let for_subscribe = tokens.windows(2).any(|pair| {
            matches!(pair, [Token::Word(f), Token::Word(s)]
                if f.eq_ignore_ascii_case("FOR") && s.eq_ignore_ascii_case("SUBSCRIBE"))
        });
        if !for_subscribe {
            return Ok(None);
        }
        let mut tokens = Tokens { tokens, at: 1 };
        let cursor = tokens.name()?;
        if tokens.keyword("NO") {
            tokens.expect("SCROLL")?;
        }
        tokens.expect("CURSOR")?;
        let mut hold = false;
        if tokens.keyword("WITHOUT") {
            tokens.expect("HOLD")?;
        } else if tokens.keyword("WITH") {
            tokens.expect("HOLD")?;
            hold = true;
        }
        tokens.expect("FOR")?;
        tokens.expect("SUBSCRIBE")?;
        let subscribe = subscribe(&mut tokens)?;
        return Ok(Some(SubscribeForm::Declare {
            cursor,
            hold,
            subscribe,
        }));
    }
    Ok(None)
}

/// The rest of a `SUBSCRIBE` after its keyword.
fn subscribe(tokens: &mut Tokens) -> Result<SubscribeSyntax, String> {
    tokens.keyword("TO");
    let query = match tokens.next() {
        Some(Token::Group(query)) => query,
        Some(Token::Word(name)) => format!("SELECT * FROM {name}"),
        Some(Token::Quoted(name)) => format!("SELECT * FROM \"{}\"", name.replace('"', "\"\"")),
        _ => {
            return Err(format!(
                "expected a table, a stream or (SELECT ...){}",
                tokens.near()
            ))
        }
    };
    let mut syntax = SubscribeSyntax {
        query,
        snapshot: None,
        progress: false,
        as_of: None,
    };
    while !tokens.done() {
        if tokens.keyword("WITH") {
            let Some(Token::Group(options)) = tokens.next() else {
                return Err(format!("expected (options) after WITH{}", tokens.near()));
            };
            for (name, value) in options_of(&options)? {
                let flag = match value.to_ascii_lowercase().as_str() {
                    "true" | "on" | "1" => true,
                    "false" | "off" | "0" => false,
                    _ => return Err(format!("{name} must be true or false, not {value}")),
                };
                match name.as_str() {
                    "snapshot" => syntax.snapshot = Some(flag),
                    "progress" => syntax.progress = flag,
                    other => {
                        return Err(format!(
                            "unknown SUBSCRIBE option {other} (SNAPSHOT, PROGRESS)"
                        ))
                    }
                }
            }
        } else if tokens.keyword("AS") {
            tokens.expect("OF")?;
            tokens.expect("OFFSETS")?;
            let Some(Token::Group(pairs)) = tokens.next() else {
                return Err(format!(
                    "expected (partition:offset, ...) after AS OF OFFSETS{}",
                    tokens.near()
                ));
            };
            syntax.as_of = Some(offsets_of(&pairs)?);
        } else {
            return Err(format!("unexpected text in SUBSCRIBE{}", tokens.near()));
        }
    }
    Ok(syntax)
}

/// `name [=] value, ...` of a WITH list; names lower-cased, values as written.
fn options_of(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut tokens = Tokens {
        tokens: tokenize(text)?,
        at: 0,
    };
    let mut options = Vec::new();
    while !tokens.done() {
        let name = tokens.name()?;
        if tokens.peek() == Some(&Token::Punct('=')) {
            tokens.next();
        }
        let value = match tokens.next() {
            Some(Token::Word(v) | Token::Str(v) | Token::Number(v) | Token::Quoted(v)) => v,
            _ => return Err(format!("expected a value for {name}{}", tokens.near())),
        };
        options.push((name, value));
        match tokens.next() {
            None => break,
            Some(Token::Punct(',')) => {}
            _ => return Err(format!("expected , between options{}", tokens.near())),
        }
    }
    Ok(options)
}

/// `partition:offset, ...`.
fn offsets_of(text: &str) -> Result<Offsets, String> {
    let mut tokens = Tokens {
        tokens: tokenize(text)?,
        at: 0,
    };
    let mut offsets = Offsets::new();
    let number = |token: Option<Token>| match token {
        Some(Token::Number(n)) => n.parse::<i64>().map_err(|e| format!("{n}: {e}")),
        other => Err(format!("expected partition:offset, found {other:?}")),
    };
    while !tokens.done() {
        let partition = i32::try_from(number(tokens.next())?)
            .map_err(|_| "a partition number out of range".to_string())?;
        if tokens.next() != Some(Token::Punct(':')) {
            return Err("expected partition:offset".into());
        }
        offsets.insert(partition, number(tokens.next())?);
        match tokens.next() {
            None => break,
            Some(Token::Punct(',')) => {}
            _ => return Err("expected , between partition:offset pairs".into()),
        }
    }
    Ok(offsets)
}

/// The `FETCH` or `CLOSE` `sql` is, if it is one (of any cursor); `None` for any other
/// statement or one this grammar does not read (the session's hooks answer those).
pub fn cursor_statement(sql: &str) -> Option<CursorStatement> {
    let is_fetch = starts_with_word(sql, "FETCH");
    if !is_fetch && !starts_with_word(sql, "CLOSE") {
        return None;
    }
    let mut tokens = Tokens {
        tokens: tokenize(sql.trim_start()).ok()?,
        at: 1,
    };
    if !is_fetch {
        let cursor = tokens.name().ok()?;
        return tokens.done().then_some(CursorStatement::Close { cursor });
    }
    tokens.keyword("FORWARD");
    let count = match tokens.peek()? {
        Token::Number(n) => {
            let n = n.parse::<u64>().ok()?;
            tokens.next();
            Some(n)
        }
        Token::Word(w) if w.eq_ignore_ascii_case("ALL") => {
            tokens.next();
            None
        }
        Token::Word(w) if w.eq_ignore_ascii_case("NEXT") => {
            tokens.next();
            Some(1)
        }
        _ => Some(1),
    };
    if !tokens.keyword("FROM") {
        tokens.keyword("IN");
    }
    let cursor = tokens.name().ok()?;
    let mut timeout = None;
    if tokens.keyword("WITH") {
        let Some(Token::Group(options)) = tokens.next() else {
            return None;
        };
        for (name, value) in options_of(&options).ok()? {
            if name != "timeout" {
                return None;
            }
            timeout = Some(parse_timeout(&value)?);
        }
    }
    tokens.done().then_some(CursorStatement::Fetch {
        cursor,
        count,
        timeout,
    })
}

/// `'1s'`, `'250ms'`, `'0s'`, or a bare number of seconds.
fn parse_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    humantime::parse_duration(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(form: SubscribeForm) -> SubscribeSyntax {
        match form {
            SubscribeForm::Stream(s) | SubscribeForm::Copy(s) => s,
            SubscribeForm::Declare { subscribe, .. } => subscribe,
        }
    }

    #[test]
    fn the_forms_of_subscribe() {
        let bare = syntax(recognize("subscribe to users;").unwrap().unwrap());
        assert_eq!(bare.query, "SELECT * FROM users");
        assert_eq!(
            (bare.snapshot, bare.progress, bare.as_of),
            (None, false, None)
        );

        let full = recognize(
            "SUBSCRIBE (SELECT id, name FROM users WHERE name <> 'a)b') \
             WITH (SNAPSHOT = false, PROGRESS true) AS OF OFFSETS (0:12, 1:-1)",
        )
        .unwrap()
        .unwrap();
        let full = syntax(full);
        assert_eq!(full.query, "SELECT id, name FROM users WHERE name <> 'a)b'");
        assert_eq!((full.snapshot, full.progress), (Some(false), true));
        assert_eq!(full.as_of, Some(Offsets::from([(0, 12), (1, -1)])));

        match recognize("COPY (SUBSCRIBE users) TO STDOUT").unwrap() {
            Some(SubscribeForm::Copy(s)) => assert_eq!(s.query, "SELECT * FROM users"),
            other => panic!("{other:?}"),
        }
        match recognize("DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SUBSCRIBE users").unwrap() {
            Some(SubscribeForm::Declare { cursor, hold, .. }) => {
                assert_eq!((cursor.as_str(), hold), ("c", false))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_statements_are_not_subscribe() {
        for sql in [
            "SELECT 1",
            "subscriber",
            "COPY (SELECT 1) TO STDOUT",
            "DECLARE c CURSOR FOR SELECT 1",
            "COPY t TO STDOUT",
            "DECLARE c CURSOR FOR SELECT 'unterminated",
            "COPY (SELECT ')') TO STDOUT",
        ] {
            assert_eq!(recognize(sql), Ok(None), "{sql}");
        }
        assert!(recognize("SUBSCRIBE users WITH (BUFFER = 1)").is_err());
        assert!(recognize("SUBSCRIBE users AS OF OFFSETS (0)").is_err());
        assert!(recognize("SUBSCRIBE users; SELECT 1").is_err());
    }

    #[test]
    fn fetch_and_close() {
        assert_eq!(
            cursor_statement("FETCH 10 c WITH (timeout = '1s')"),
            Some(CursorStatement::Fetch {
                cursor: "c".into(),
                count: Some(10),
                timeout: Some(Duration::from_secs(1)),
            })
        );
        assert_eq!(
            cursor_statement("fetch all from \"C\""),
            Some(CursorStatement::Fetch {
                cursor: "C".into(),
                count: None,
                timeout: None,
            })
        );
        assert_eq!(
            cursor_statement("FETCH FORWARD ALL IN c WITH (TIMEOUT = '0s');"),
            Some(CursorStatement::Fetch {
                cursor: "c".into(),
                count: None,
                timeout: Some(Duration::ZERO),
            })
        );
        assert_eq!(
            cursor_statement("close c"),
            Some(CursorStatement::Close { cursor: "c".into() })
        );
        assert_eq!(cursor_statement("FETCH PRIOR FROM c"), None);
        assert_eq!(cursor_statement("SELECT 1"), None);
    }
}
