//! The JSON-lines history format (`--history-out`): one [`Event`] per line.
//!
//! ```text
//! {"process":0,"type":"invoke","f":"cas","key":1,"value":5,"expected":null,"time":1200}
//! {"process":0,"type":"ok","f":"cas","key":1,"value":5,"expected":null,"time":3400}
//! {"process":1,"type":"fail","f":"remove","key":2,"value":null,"expected":null,"time":3500,"result":false}
//! ```
//!
//! Fields: `process` (unsigned integer), `type` (`invoke`, `ok`, `fail`, `info`), `f`
//! (`put`, `get`, `cas`, `remove`), `key` (integer), `value` and `expected` (integer or
//! `null`), `time` (unsigned integer, nanoseconds), and the optional `result` (boolean)
//! of a cas or remove; see [`history`](super::history) for what each means per
//! operation. The writer always writes the first seven fields in this order and
//! `result` only when known. The reader takes the fields in any order, treats a
//! missing `value`, `expected` or `result` as `null`, ignores unknown fields with
//! scalar values, skips blank lines, and reports anything else as a [`ReadError`]
//! naming the line: it never panics on its input.

use std::fmt;
use std::io::{self, BufRead, Write};

use super::history::{Event, EventType, OpFn, Value};

/// One event as a JSON line, without the newline.
pub fn format_event(e: &Event) -> String {
    fn opt(v: Option<Value>) -> String {
        v.map_or_else(|| "null".to_string(), |v| v.to_string())
    }
    let mut s = format!(
        "{{\"process\":{},\"type\":\"{}\",\"f\":\"{}\",\"key\":{},\"value\":{},\"expected\":{},\"time\":{}",
        e.process,
        e.ty.as_str(),
        e.f.as_str(),
        e.key,
        opt(e.value),
        opt(e.expected),
        e.time_ns
    );
    if let Some(r) = e.result {
        s.push_str(if r {
            ",\"result\":true"
        } else {
            ",\"result\":false"
        });
    }
    s.push('}');
    s
}

/// Writes the events, one line each.
pub fn write_history<W: Write>(mut w: W, events: &[Event]) -> io::Result<()> {
    for e in events {
        w.write_all(format_event(e).as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// What is wrong with a line.
#[derive(Debug)]
pub enum ReadErrorKind {
    /// Reading failed (including invalid UTF-8).
    Io(io::Error),
    /// Not a flat JSON object: the byte column (1-based) and what was expected.
    Syntax {
        /// 1-based byte column.
        column: usize,
        /// What the parser expected or found.
        message: &'static str,
    },
    /// A required field is absent.
    MissingField(&'static str),
    /// A field appears twice.
    DuplicateField(String),
    /// A field has a value of the wrong type or out of range.
    BadValue {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

/// A line that is not a valid event.
#[derive(Debug)]
pub struct ReadError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ReadErrorKind,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            ReadErrorKind::Io(e) => write!(f, "read error: {e}"),
            ReadErrorKind::Syntax { column, message } => {
                write!(f, "column {column}: {message}")
            }
            ReadErrorKind::MissingField(n) => write!(f, "missing field {n:?}"),
            ReadErrorKind::DuplicateField(n) => write!(f, "field {n:?} appears twice"),
            ReadErrorKind::BadValue { field, expected } => {
                write!(f, "field {field:?} must be {expected}")
            }
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ReadErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads a whole history; stops at the first bad line.
pub fn read_history<R: BufRead>(r: R) -> Result<Vec<Event>, ReadError> {
    let mut out = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| ReadError {
            line: line_no,
            kind: ReadErrorKind::Io(e),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_event(&line).map_err(|kind| ReadError {
            line: line_no,
            kind,
        })?);
    }
    Ok(out)
}

/// A scalar JSON value.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// An integer that fits `i128` (enough for `u64` and `i64`).
    Int(i128),
    /// A number with a fraction or exponent, or too large.
    OtherNumber,
    Str(String),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

type PResult<T> = Result<T, ReadErrorKind>;

impl<'a> Parser<'a> {
    fn err<T>(&self, message: &'static str) -> PResult<T> {
        Err(ReadErrorKind::Syntax {
            column: self.pos + 1,
            message,
        })
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8, message: &'static str) -> PResult<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(message)
        }
    }

    fn literal(&mut self, word: &[u8], v: Json) -> PResult<Json> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            self.err("invalid literal")
        }
    }

    fn hex4(&mut self) -> PResult<u32> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return self.err("truncated \\u escape");
        };
        let Some(v) = std::str::from_utf8(h)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
        else {
            return self.err("invalid \\u escape");
        };
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> PResult<String> {
        self.expect(b'"', "expected a string")?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return self.err("unterminated string");
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated escape");
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return self.err("unpaired surrogate");
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err("unpaired surrogate");
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(c) => c,
                                None => return self.err("invalid \\u escape"),
                            }
                        }
                        _ => return self.err("invalid escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return self.err("control character in string"),
                _ => out.push(b),
            }
        }
        // The input is a &str and escapes produce valid UTF-8.
        String::from_utf8(out).or_else(|_| self.err("invalid UTF-8 in string"))
    }

    fn number(&mut self) -> PResult<Json> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if self.pos == digits {
            return self.err("invalid number");
        }
        if self.s[digits] == b'0' && self.pos - digits > 1 {
            return self.err("leading zero in number");
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            let f = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == f {
                return self.err("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            let e = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == e {
                return self.err("invalid number");
            }
        }
        if !integer {
            return Ok(Json::OtherNumber);
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        Ok(text.parse::<i128>().map_or(Json::OtherNumber, Json::Int))
    }

    fn value(&mut self) -> PResult<Json> {
        match self.peek() {
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'{' | b'[') => self.err("nested objects and arrays are not part of the format"),
            Some(_) => self.err("expected a value"),
            None => self.err("unexpected end of line"),
        }
    }

    fn object(&mut self) -> PResult<Vec<(String, Json)>> {
        self.ws();
        self.expect(b'{', "expected '{'")?;
        let mut fields: Vec<(String, Json)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.ws();
                let name = self.string()?;
                self.ws();
                self.expect(b':', "expected ':'")?;
                self.ws();
                let v = self.value()?;
                if fields.iter().any(|(n, _)| *n == name) {
                    return Err(ReadErrorKind::DuplicateField(name));
                }
                fields.push((name, v));
                self.ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return self.err("expected ',' or '}'"),
                }
            }
        }
        self.ws();
        if self.pos != self.s.len() {
            return self.err("trailing characters after the object");
        }
        Ok(fields)
    }
}

/// Parses one line into an event.
pub fn parse_event(line: &str) -> Result<Event, ReadErrorKind> {
    let mut p = Parser {
        s: line.as_bytes(),
        pos: 0,
    };
    let fields = p.object()?;
    let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let required = |name: &'static str| get(name).ok_or(ReadErrorKind::MissingField(name));
    let bad =
        |field: &'static str, expected: &'static str| ReadErrorKind::BadValue { field, expected };
    let unsigned = |name: &'static str| match required(name)? {
        Json::Int(i) => u64::try_from(*i).map_err(|_| bad(name, "an unsigned 64-bit integer")),
        _ => Err(bad(name, "an unsigned 64-bit integer")),
    };
    let signed = |name: &'static str, v: &Json| match v {
        Json::Int(i) => i64::try_from(*i).map_err(|_| bad(name, "a 64-bit integer")),
        _ => Err(bad(name, "a 64-bit integer")),
    };
    let nullable = |name: &'static str| match get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => signed(name, v).map(Some),
    };
    let process = unsigned("process")?;
    let ty = match required("type")? {
        Json::Str(s) => EventType::from_name(s),
        _ => None,
    }
    .ok_or_else(|| bad("type", "one of \"invoke\", \"ok\", \"fail\", \"info\""))?;
    let f = match required("f")? {
        Json::Str(s) => OpFn::from_name(s),
        _ => None,
    }
    .ok_or_else(|| bad("f", "one of \"put\", \"get\", \"cas\", \"remove\""))?;
    let key = signed("key", required("key")?)?;
    let value = nullable("value")?;
    let expected = nullable("expected")?;
    let result = match get("result") {
        None | Some(Json::Null) => None,
        Some(Json::Bool(b)) => Some(*b),
        Some(_) => return Err(bad("result", "a boolean or null")),
    };
    let time_ns = unsigned("time")?;
    Ok(Event {
        process,
        ty,
        f,
        key,
        value,
        expected,
        result,
        time_ns,
    })
}
