//! The `.properties` file syntax, with the JDK's `Properties.load(InputStream)` rules.
//!
//! * The bytes are ISO-8859-1: every byte is one character (U+0000..U+00FF); other
//!   characters are written as `\uXXXX`.
//! * Lines end at `\n`, `\r` or `\r\n`. Leading blanks (space, tab, form feed) of each
//!   line are skipped; blank lines are ignored; a line whose first non-blank character is
//!   `#` or `!` is a comment (a trailing backslash does not extend a comment).
//! * A line ending in an odd number of backslashes continues on the next line, whose
//!   leading blanks are dropped; a continuation line is not a comment unless nothing
//!   of the logical line has been read yet.
//! * The key ends at the first unescaped `=`, `:` or blank; blanks around the separator
//!   are skipped, at most one `=`/`:` is consumed; the rest of the line, trailing blanks
//!   included, is the value.
//! * Escapes in keys and values: `\t`, `\n`, `\r`, `\f`, `\uXXXX` (exactly four hex
//!   digits, else an error); a backslash before any other character yields that character.
//! * A later definition of a key replaces an earlier one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One key's value and where it was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropEntry {
    /// The value after escape processing (no trimming: trailing blanks are kept).
    pub value: String,
    /// The 1-based line on which the logical line defining this key starts.
    pub line: usize,
}

/// A loaded properties file: keys in sorted order, each with its value and line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// Where the text came from (shown in errors); `None` for in-memory text.
    pub source: Option<PathBuf>,
    entries: BTreeMap<String, PropEntry>,
}

/// Why a properties file could not be read or parsed.
#[derive(Debug)]
pub enum PropsError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A `\u` escape not followed by four hex digits.
    MalformedUnicodeEscape {
        /// The file, if any.
        path: Option<PathBuf>,
        /// The 1-based line where the logical line starts.
        line: usize,
        /// The key text as far as it could be read (raw, unescaped).
        key: String,
    },
    /// A `\uXXXX` escape naming half of a surrogate pair without its other half
    /// (the JDK would accept it; Rust strings cannot hold it).
    LoneSurrogate {
        /// The file, if any.
        path: Option<PathBuf>,
        /// The 1-based line where the logical line starts.
        line: usize,
        /// The key text as far as it could be read (raw, unescaped).
        key: String,
    },
}

fn show_path(p: &Option<PathBuf>) -> String {
    match p {
        Some(p) => p.display().to_string(),
        None => "<text>".to_string(),
    }
}

impl fmt::Display for PropsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropsError::Io { path, error } => {
                write!(f, "cannot read properties file {}: {error}", path.display())
            }
            PropsError::MalformedUnicodeEscape { path, line, key } => write!(
                f,
                "{}:{line}: key '{key}': malformed \\uXXXX escape (needs exactly four hex digits)",
                show_path(path)
            ),
            PropsError::LoneSurrogate { path, line, key } => write!(
                f,
                "{}:{line}: key '{key}': \\uXXXX escape is an unpaired UTF-16 surrogate",
                show_path(path)
            ),
        }
    }
}

impl std::error::Error for PropsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PropsError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

/// Splits the text into logical lines (continuations joined, comments and blank lines
/// dropped), each with the 1-based number of the line holding its first character.
///
/// This follows the JDK's line reader step by step, including its corner cases: a
/// continuation that leaves nothing read lets the next line be a comment, and a line
/// of only a backslash at the very end of the input is an entry with an empty key.
fn logical_lines(text: &[char]) -> Vec<(usize, Vec<char>)> {
    let n = text.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line_no = 1;
    // Takes the next char, keeping the line count (`\r\n` counts once).
    let next = |i: &mut usize, line_no: &mut usize| -> (char, usize) {
        let c = text[*i];
        let here = *line_no;
        *i += 1;
        if c == '\n' || (c == '\r' && !(*i < n && text[*i] == '\n')) {
            *line_no += 1;
        }
        (c, here)
    };
    loop {
        let mut buf: Vec<char> = Vec::new();
        let mut start_line = line_no;
        let mut skip_blanks = true;
        let mut appended_begin = false;
        let mut backslash = false;
        let line = loop {
            if i >= n {
                if buf.is_empty() {
                    break None;
                }
                if backslash {
                    buf.pop();
                }
                break Some(buf);
            }
            let (c, here) = next(&mut i, &mut line_no);
            if skip_blanks {
                if is_blank(c) || (!appended_begin && (c == '\r' || c == '\n')) {
                    continue;
                }
                skip_blanks = false;
                appended_begin = false;
            }
            if buf.is_empty() && (c == '#' || c == '!') {
                // A comment: drop everything up to and including the line end.
                while i < n {
                    let (b, _) = next(&mut i, &mut line_no);
                    if b == '\r' || b == '\n' {
                        break;
                    }
                }
                skip_blanks = true;
                continue;
            }
            if c != '\n' && c != '\r' {
                if buf.is_empty() {
                    start_line = here;
                }
                buf.push(c);
                backslash = if c == '\\' { !backslash } else { false };
                continue;
            }
            // A line end.
            if buf.is_empty() {
                skip_blanks = true;
                continue;
            }
            if i >= n {
                if backslash {
                    buf.pop();
                }
                break Some(buf);
            }
            if !backslash {
                break Some(buf);
            }
            // Continuation: drop the backslash, skip the next line's leading blanks.
            buf.pop();
            skip_blanks = true;
            appended_begin = true;
            backslash = false;
            if c == '\r' && text[i] == '\n' {
                next(&mut i, &mut line_no);
            }
        };
        match line {
            Some(l) => out.push((start_line, l)),
            None => break,
        }
    }
    out
}

/// Splits a logical line into its raw (still escaped) key and value.
fn split_key_value(line: &[char]) -> (&[char], &[char]) {
    let limit = line.len();
    let mut key_len = 0;
    let mut value_start = limit;
    let mut has_sep = false;
    let mut backslash = false;
    while key_len < limit {
        let c = line[key_len];
        if (c == '=' || c == ':') && !backslash {
            value_start = key_len + 1;
            has_sep = true;
            break;
        } else if is_blank(c) && !backslash {
            value_start = key_len + 1;
            break;
        }
        backslash = if c == '\\' { !backslash } else { false };
        key_len += 1;
    }
    while value_start < limit {
        let c = line[value_start];
        if !is_blank(c) {
            if !has_sep && (c == '=' || c == ':') {
                has_sep = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    (&line[..key_len], &line[value_start..])
}

enum ConvertError {
    Malformed,
    LoneSurrogate,
}

fn convert(raw: &[char]) -> Result<String, ConvertError> {
    let mut units: Vec<u16> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        i += 1;
        if c != '\\' || i >= raw.len() {
            // A lone trailing backslash cannot reach here from the line reader, but
            // keep it literally if it does.
            push_char(&mut units, c);
            continue;
        }
        let e = raw[i];
        i += 1;
        match e {
            'u' => {
                if i + 4 > raw.len() {
                    return Err(ConvertError::Malformed);
                }
                let mut v: u16 = 0;
                for &h in &raw[i..i + 4] {
                    let d = h.to_digit(16).ok_or(ConvertError::Malformed)?;
                    v = (v << 4) | d as u16;
                }
                i += 4;
                units.push(v);
            }
            't' => units.push(b'\t' as u16),
            'r' => units.push(b'\r' as u16),
            'n' => units.push(b'\n' as u16),
            'f' => units.push(0x0c),
            other => push_char(&mut units, other),
        }
    }
    String::from_utf16(&units).map_err(|_| ConvertError::LoneSurrogate)
}

fn push_char(units: &mut Vec<u16>, c: char) {
    let mut b = [0u16; 2];
    units.extend_from_slice(c.encode_utf16(&mut b));
}

impl Properties {
    /// Parses properties text given as bytes (ISO-8859-1, as the JDK reads a stream).
    pub fn parse_bytes(bytes: &[u8], source: Option<PathBuf>) -> Result<Properties, PropsError> {
        let chars: Vec<char> = bytes.iter().map(|&b| b as char).collect();
        Self::parse_chars(&chars, source)
    }

    /// Parses properties text already decoded to characters (as the JDK's
    /// `Properties.load(Reader)`); escapes are still processed.
    pub fn parse_str(text: &str) -> Result<Properties, PropsError> {
        let chars: Vec<char> = text.chars().collect();
        Self::parse_chars(&chars, None)
    }

    fn parse_chars(chars: &[char], source: Option<PathBuf>) -> Result<Properties, PropsError> {
        let mut entries = BTreeMap::new();
        for (line, buf) in logical_lines(chars) {
            let (raw_key, raw_value) = split_key_value(&buf);
            let err = |e: ConvertError, source: &Option<PathBuf>| {
                let key: String = raw_key.iter().collect();
                match e {
                    ConvertError::Malformed => PropsError::MalformedUnicodeEscape {
                        path: source.clone(),
                        line,
                        key,
                    },
                    ConvertError::LoneSurrogate => PropsError::LoneSurrogate {
                        path: source.clone(),
                        line,
                        key,
                    },
                }
            };
            let key = convert(raw_key).map_err(|e| err(e, &source))?;
            let value = convert(raw_value).map_err(|e| err(e, &source))?;
            entries.insert(key, PropEntry { value, line });
        }
        Ok(Properties { source, entries })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Properties, PropsError> {
        let bytes = std::fs::read(path).map_err(|error| PropsError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse_bytes(&bytes, Some(path.to_path_buf()))
    }

    /// The value of `key`, if defined.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }

    /// The value and line of `key`, if defined.
    pub fn entry(&self, key: &str) -> Option<&PropEntry> {
        self.entries.get(key)
    }

    /// Sets (or replaces) a key; `line` 0 marks a value not read from a file.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(
            key.into(),
            PropEntry {
                value: value.into(),
                line: 0,
            },
        );
    }

    /// All keys with their entries, in sorted key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PropEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many keys are defined.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is defined.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Escapes a key for writing so that [`Properties::parse_bytes`] reads it back
/// unchanged (blanks, separators, comment marks, backslashes and non-printable or
/// non-ASCII characters escaped).
pub fn escape_key(key: &str) -> String {
    escape(key, true)
}

/// Escapes a value for writing (a leading blank, `=` or `:`, backslashes, line breaks
/// and non-printable or non-ASCII characters); ordinary values come out unchanged.
pub fn escape_value(value: &str) -> String {
    escape(value, false)
}

fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '=' | ':' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            '=' | ':' | '#' | '!' if is_key => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut b = [0u16; 2];
                for u in c.encode_utf16(&mut b) {
                    out.push_str(&format!("\\u{:04X}", u));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Properties {
        Properties::parse_bytes(text, None).unwrap()
    }

    #[test]
    fn separators_comments_and_blanks() {
        let p = parse(
            b"# comment \\\nnot.comment = 1\n  ! also comment\nk1=v1  \nk2 : v2\nk3 v3\nk4\n\\#k6=x\nk7 = = x\n\t\x0ck15\t=\t:v\n",
        );
        assert_eq!(p.get("not.comment"), Some("1"));
        assert_eq!(p.get("k1"), Some("v1  "));
        assert_eq!(p.get("k2"), Some("v2"));
        assert_eq!(p.get("k3"), Some("v3"));
        assert_eq!(p.get("k4"), Some(""));
        assert_eq!(p.get("#k6"), Some("x"));
        assert_eq!(p.get("k7"), Some("= x"));
        assert_eq!(p.get("k15"), Some(":v"));
        assert_eq!(p.len(), 8);
        assert_eq!(p.entry("not.comment").unwrap().line, 2);
        assert_eq!(p.entry("k15").unwrap().line, 10);
    }

    #[test]
    fn continuations_and_line_ends() {
        let p = parse(
            b"k5=\\\n   cont \\\n  inued\nk10=a\\\\\\\n  b\nk11 =\\\n\nk12=x\r\nk13=y\rk14=\\\r\n   z\ncont=a\\\n# notcomment\nlast=v\\",
        );
        assert_eq!(p.get("k5"), Some("cont inued"));
        assert_eq!(p.get("k10"), Some("a\\b"));
        assert_eq!(p.get("k11"), Some(""));
        assert_eq!(p.get("k12"), Some("x"));
        assert_eq!(p.get("k13"), Some("y"));
        assert_eq!(p.get("k14"), Some("z"));
        assert_eq!(p.get("cont"), Some("a# notcomment"));
        assert_eq!(p.get("last"), Some("v"));
        assert_eq!(p.entry("k10").unwrap().line, 4);
        assert_eq!(p.entry("k12").unwrap().line, 8);
        assert_eq!(p.entry("k13").unwrap().line, 9);
        assert_eq!(p.entry("k14").unwrap().line, 10);
    }

    #[test]
    fn escapes_and_latin1() {
        let p =
            parse(b"k8:\\u0041\\t\\n\\q\nk\\ 9 = a\\\\\nk16=\xe9\nk\\=x=\\u00e9\\uD83D\\uDE00\n");
        assert_eq!(p.get("k8"), Some("A\t\nq"));
        assert_eq!(p.get("k 9"), Some("a\\"));
        assert_eq!(p.get("k16"), Some("\u{e9}"));
        assert_eq!(p.get("k=x"), Some("\u{e9}\u{1F600}"));
    }

    #[test]
    fn later_definition_wins() {
        let p = parse(b"a=1\na=2\n");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.entry("a").unwrap().line, 2);
    }

    #[test]
    fn malformed_unicode_escape_names_line_and_key() {
        let e =
            Properties::parse_bytes(b"ok=1\n\nbad.key = \\u12G4\n", Some("x.properties".into()))
                .unwrap_err();
        match &e {
            PropsError::MalformedUnicodeEscape { line, key, .. } => {
                assert_eq!(*line, 3);
                assert_eq!(key, "bad.key");
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.starts_with("x.properties:3: key 'bad.key'"), "{msg}");
        assert!(matches!(
            Properties::parse_bytes(b"k=\\u12", None),
            Err(PropsError::MalformedUnicodeEscape { line: 1, .. })
        ));
        assert!(matches!(
            Properties::parse_bytes(b"k=\\uD800x", None),
            Err(PropsError::LoneSurrogate { line: 1, .. })
        ));
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert!(parse(b"").is_empty());
        assert!(parse(b"\n\n   \n# x\n! y\\\n").is_empty());
        assert!(parse(b"\\\n\n").is_empty());
        // The JDK's corner case: a lone backslash line at the very end is an empty key.
        assert_eq!(parse(b"\\\n").get(""), Some(""));
        assert!(parse(b"\\\n#x=1\n").is_empty());
        assert_eq!(parse(b"  \\\n  x=1\n").get("x"), Some("1"));
    }

    #[test]
    fn escape_round_trips() {
        let cases = [
            ("plain.key", "1,127.0.0.1:9331;"),
            ("a key=:#!", "  lead\ttab\nnl\\back é \u{1F600}"),
            ("", ""),
            ("#", ":"),
            ("k", "=x"),
        ];
        for (k, v) in cases {
            let text = format!("{} = {}\n", escape_key(k), escape_value(v));
            let p = Properties::parse_bytes(text.as_bytes(), None).unwrap();
            assert_eq!(p.get(k), Some(v), "{text}");
        }
        assert_eq!(escape_value("1,127.0.0.1:9331;"), "1,127.0.0.1:9331;");
    }
}
