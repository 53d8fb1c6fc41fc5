//! Hand-written recursive-descent parser for the selector language.

use std::collections::BTreeSet;
use std::fmt;

use super::Selector;

/// How deeply `(` and `!` may nest; deeper input is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// A selector that does not parse: where (a character offset into the text) and why.
///
/// Its `Display` prints the reason, then the selector with a caret under the position:
///
/// ```text
/// invalid selector at position 7: values must be quoted, as in app == 'web'
///   app == web
///          ^
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SelectorError {
    /// Offset of the offending character, counted in characters (not bytes) from 0; equal to
    /// the length of the text when the selector ended too early.
    pub position: usize,
    /// What is wrong and how to fix it.
    pub reason: String,
    /// The selector text as given.
    pub input: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid selector at position {}: {}",
            self.position, self.reason
        )?;
        // Keep the text on one line so the caret stays under the right character.
        let shown: String = self
            .input
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        writeln!(f, "  {shown}")?;
        write!(f, "  {}^", " ".repeat(self.position))
    }
}

/// Parses `input` (see the module documentation for the grammar).
pub(super) fn parse(input: &str) -> Result<Selector, SelectorError> {
    let mut p = Parser {
        input,
        chars: input.chars().collect(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Ok(Selector::All);
    }
    let e = p.parse_or()?;
    p.skip_ws();
    if let Some(c) = p.peek() {
        let reason = match c {
            ')' => "unbalanced `)`: there is no `(` open here".to_string(),
            _ => format!(
                "unexpected `{}` after a complete expression; join expressions with && or ||",
                p.word_at(p.pos)
            ),
        };
        return Err(p.error(p.pos, reason));
    }
    Ok(e)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

const EXPECTED_TERM: &str = "expected a label key, all(), has(key), `!` or `(`";
const OPERATORS: &str = "==, !=, in, not in, contains, starts with or ends with";

impl Parser<'_> {
    fn error(&self, position: usize, reason: impl Into<String>) -> SelectorError {
        SelectorError {
            position,
            reason: reason.into(),
            input: self.input.to_string(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// The label-key-like word starting at `at` (or the single character there).
    fn word_at(&self, at: usize) -> String {
        let word: String = self.chars[at..]
            .iter()
            .take_while(|c| is_key_char(**c))
            .collect();
        if word.is_empty() {
            self.chars
                .get(at)
                .map(|c| c.to_string())
                .unwrap_or_default()
        } else {
            word
        }
    }

    /// Reads a label key (or keyword) at the current position; empty if there is none.
    fn read_word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_key_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn enter(&mut self) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                self.pos,
                format!("expression nested more than {MAX_DEPTH} levels deep; simplify it"),
            ));
        }
        Ok(())
    }

    /// or := and ( "||" and )*
    fn parse_or(&mut self) -> Result<Selector, SelectorError> {
        let mut terms = vec![self.parse_and()?];
        loop {
            self.skip_ws();
            if self.peek() == Some('|') {
                if self.peek_at(1) != Some('|') {
                    return Err(self.error(
                        self.pos,
                        "use `||` for \"or\" (a single `|` is not an operator)",
                    ));
                }
                self.pos += 2;
                terms.push(self.parse_and()?);
            } else {
                break;
            }
        }
        Ok(flatten(terms, false))
    }

    /// and := unary ( "&&" unary )*
    fn parse_and(&mut self) -> Result<Selector, SelectorError> {
        let mut terms = vec![self.parse_unary()?];
        loop {
            self.skip_ws();
            if self.peek() == Some('&') {
                if self.peek_at(1) != Some('&') {
                    return Err(self.error(
                        self.pos,
                        "use `&&` for \"and\" (a single `&` is not an operator)",
                    ));
                }
                self.pos += 2;
                terms.push(self.parse_unary()?);
            } else {
                break;
            }
        }
        Ok(flatten(terms, true))
    }

    /// unary := "!" unary | "(" or ")" | primary
    fn parse_unary(&mut self) -> Result<Selector, SelectorError> {
        self.skip_ws();
        match self.peek() {
            Some('!') => {
                self.enter()?;
                self.pos += 1;
                let inner = self.parse_unary()?;
                self.depth -= 1;
                Ok(Selector::Not(Box::new(inner)))
            }
            Some('(') => {
                self.enter()?;
                let open = self.pos;
                self.pos += 1;
                let inner = self.parse_or()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    let found = if self.at_end() {
                        "the selector ends here".to_string()
                    } else {
                        format!("found `{}`", self.word_at(self.pos))
                    };
                    return Err(self.error(
                        self.pos,
                        format!("expected `)` to close the `(` at position {open}, but {found}"),
                    ));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            _ => self.parse_primary(),
        }
    }

    /// primary := "all" "(" ")" | "has" "(" key ")" | key operator
    fn parse_primary(&mut self) -> Result<Selector, SelectorError> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.error(
                start,
                format!("{EXPECTED_TERM}, but the selector ends here"),
            ));
        };
        if c == '\'' || c == '"' {
            return Err(self.error(
                start,
                "a quoted value must follow a label key and an operator, as in app == 'web'",
            ));
        }
        if !is_key_char(c) {
            return Err(self.error(start, format!("unexpected `{c}`: {EXPECTED_TERM}")));
        }
        let word = self.read_word();
        let after_word = self.pos;
        self.skip_ws();
        if self.peek() == Some('(') {
            return self.parse_function(start, &word);
        }
        self.pos = after_word;
        self.parse_operator(word)
    }

    fn parse_function(&mut self, start: usize, name: &str) -> Result<Selector, SelectorError> {
        self.pos += 1; // '('
        self.skip_ws();
        let result = match name {
            "all" => Selector::All,
            "has" => {
                let key_pos = self.pos;
                let key = self.read_word();
                if key.is_empty() {
                    return Err(self.error(
                        key_pos,
                        "expected a label key inside has( ), as in has(app)",
                    ));
                }
                self.skip_ws();
                Selector::Has(key)
            }
            other => {
                return Err(self.error(
                    start,
                    format!("unknown function `{other}()`; selectors know all() and has(key)"),
                ))
            }
        };
        if self.peek() != Some(')') {
            let what = if name == "all" {
                "all() takes no argument"
            } else {
                "has( ) takes exactly one label key"
            };
            return Err(self.error(self.pos, format!("expected `)`: {what}")));
        }
        self.pos += 1;
        Ok(result)
    }

    fn parse_operator(&mut self, key: String) -> Result<Selector, SelectorError> {
        self.skip_ws();
        let op_pos = self.pos;
        let expected = || format!("expected an operator after the label key `{key}`: {OPERATORS}");
        match (self.peek(), self.peek_at(1)) {
            (None, _) => Err(self.error(
                op_pos,
                format!("{}, but the selector ends here", expected()),
            )),
            (Some('='), Some('=')) => {
                self.pos += 2;
                Ok(Selector::Eq(key, self.parse_value()?))
            }
            (Some('!'), Some('=')) => {
                self.pos += 2;
                Ok(Selector::Ne(key, self.parse_value()?))
            }
            (Some('='), _) => Err(self.error(
                op_pos,
                "use `==` to compare (a single `=` is not an operator)",
            )),
            (Some(c), _) if c.is_ascii_alphabetic() => {
                let word = self.read_word();
                match word.as_str() {
                    "in" => Ok(Selector::In(key, self.parse_set("in")?)),
                    "not" => {
                        self.expect_word(
                            "in",
                            "`not` must be followed by `in`, as in app not in {'a', 'b'}",
                        )?;
                        Ok(Selector::NotIn(key, self.parse_set("not in")?))
                    }
                    "contains" => Ok(Selector::Contains(key, self.parse_value()?)),
                    "starts" => {
                        self.expect_word(
                            "with",
                            "`starts` must be followed by `with`, as in app starts with 'web'",
                        )?;
                        Ok(Selector::StartsWith(key, self.parse_value()?))
                    }
                    "ends" => {
                        self.expect_word(
                            "with",
                            "`ends` must be followed by `with`, as in app ends with 'web'",
                        )?;
                        Ok(Selector::EndsWith(key, self.parse_value()?))
                    }
                    _ => Err(self.error(op_pos, format!("{}; found `{word}`", expected()))),
                }
            }
            (Some(_), _) => Err(self.error(
                op_pos,
                format!("{}; found `{}`", expected(), self.word_at(op_pos)),
            )),
        }
    }

    fn expect_word(&mut self, want: &str, reason: &str) -> Result<(), SelectorError> {
        self.skip_ws();
        let at = self.pos;
        if self.read_word() != want {
            return Err(self.error(at, reason));
        }
        Ok(())
    }

    /// A value quoted with `'` or `"`.
    fn parse_value(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == q {
                        let value = self.chars[start..self.pos].iter().collect();
                        self.pos += 1;
                        return Ok(value);
                    }
                    self.pos += 1;
                }
                Err(self.error(at, format!("unterminated string: add the closing {q}")))
            }
            Some(c) if is_key_char(c) => Err(self.error(
                at,
                format!("values must be quoted, as in app == '{}'", self.word_at(at)),
            )),
            Some(c) => Err(self.error(at, format!("expected a quoted value, found `{c}`"))),
            None => Err(self.error(at, "expected a quoted value, but the selector ends here")),
        }
    }

    /// `{ 'a', "b", ... }` (possibly empty).
    fn parse_set(&mut self, op: &str) -> Result<BTreeSet<String>, SelectorError> {
        self.skip_ws();
        if self.peek() != Some('{') {
            return Err(self.error(
                self.pos,
                format!("expected `{{` to start the set of values after `{op}`, as in app {op} {{'a', 'b'}}"),
            ));
        }
        self.pos += 1;
        let mut set = BTreeSet::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.pos += 1;
            return Ok(set);
        }
        loop {
            set.insert(self.parse_value()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    return Ok(set);
                }
                Some(c) => {
                    return Err(self.error(
                        self.pos,
                        format!("expected `,` or `}}` in the set of values, found `{c}`"),
                    ))
                }
                None => {
                    return Err(self.error(
                        self.pos,
                        "expected `,` or `}` in the set of values, but the selector ends here",
                    ))
                }
            }
        }
    }
}

/// Joins parsed terms into one `And` (or `Or`), splicing in children of the same kind.
fn flatten(terms: Vec<Selector>, and: bool) -> Selector {
    if terms.len() == 1 {
        return terms.into_iter().next().unwrap_or(Selector::All);
    }
    let mut out = Vec::with_capacity(terms.len());
    for t in terms {
        match (t, and) {
            (Selector::And(inner), true) | (Selector::Or(inner), false) => out.extend(inner),
            (other, _) => out.push(other),
        }
    }
    if and {
        Selector::And(out)
    } else {
        Selector::Or(out)
    }
}
