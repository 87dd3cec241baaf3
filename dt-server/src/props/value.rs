//! Typed property values with the reference's conversion rules.
//!
//! A value is trimmed (every character up to U+0020 at either end, as Java's
//! `String.trim`); a blank value counts as absent; `${...}` is then substituted.
//! Integers accept an optional sign and decimal digits only; booleans are `true` or
//! `false` in any case; arrays are comma-separated, each part trimmed, empty trailing
//! parts dropped (so `","` is an empty array and `",1"` an error).

use super::parser::Properties;
use super::vars::{VarError, VarSource};
use std::fmt;
use std::path::PathBuf;

/// A property whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// The file the key came from, if any.
    pub file: Option<PathBuf>,
    /// The 1-based line of the key (0 when not from a file).
    pub line: usize,
    /// The full key.
    pub key: String,
    /// The value as written (trimmed, before substitution).
    pub value: String,
    /// What is wrong.
    pub reason: ValueProblem,
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueProblem {
    /// A `${...}` could not be resolved.
    Variable(VarError),
    /// Not a decimal integer in range of the expected type (`"int"` or `"long"`).
    NotAnInteger(&'static str),
    /// Neither `true` nor `false`.
    NotABoolean,
    /// Outside the allowed range; the text says what is allowed.
    OutOfRange(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<properties>".into());
        write!(
            f,
            "{file}:{}: key '{}' value '{}': ",
            self.line, self.key, self.value
        )?;
        match &self.reason {
            ValueProblem::Variable(e) => write!(f, "{e}"),
            ValueProblem::NotAnInteger(t) => write!(f, "not a valid {t} (decimal digits)"),
            ValueProblem::NotABoolean => write!(f, "must be true or false"),
            ValueProblem::OutOfRange(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// Java's `String.trim`: strips every char <= U+0020 at both ends.
pub fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

fn parse_java_int<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Rust's integer parsing has Java's syntax: optional '+'/'-', then ASCII digits.
    s.parse().ok()
}

fn split_java(s: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(',').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

/// Reads typed values of keys `<prefix>.<name>` (or `<name>` with an empty prefix)
/// from one [`Properties`], substituting variables from a [`VarSource`].
pub struct PropReader<'a> {
    props: &'a Properties,
    vars: &'a VarSource,
    prefix: String,
}

impl<'a> PropReader<'a> {
    /// A reader of `props`; `prefix` empty for unprefixed keys, else e.g. `group.0`.
    pub fn new(props: &'a Properties, vars: &'a VarSource, prefix: &str) -> PropReader<'a> {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        PropReader {
            props,
            vars,
            prefix,
        }
    }

    fn err(&self, key: &str, line: usize, value: &str, reason: ValueProblem) -> ValueError {
        ValueError {
            file: self.props.source.clone(),
            line,
            key: key.to_string(),
            value: value.to_string(),
            reason,
        }
    }

    /// The trimmed, substituted value of `name`, or `None` if absent or blank; the
    /// second element is the full key and line for error messages.
    fn raw(&self, name: &str) -> Result<Option<(String, String, usize)>, ValueError> {
        let key = format!("{}{}", self.prefix, name);
        let Some(entry) = self.props.entry(&key) else {
            return Ok(None);
        };
        let trimmed = java_trim(&entry.value);
        if trimmed.is_empty() {
            return Ok(None);
        }
        let resolved = self
            .vars
            .resolve(trimmed)
            .map_err(|e| self.err(&key, entry.line, trimmed, ValueProblem::Variable(e)))?;
        Ok(Some((resolved, key, entry.line)))
    }

    /// A string field.
    pub fn string(&self, name: &str, field: &mut String) -> Result<(), ValueError> {
        if let Some((v, _, _)) = self.raw(name)? {
            *field = v;
        }
        Ok(())
    }

    /// An optional string field (set to `Some` when present).
    pub fn opt_string(&self, name: &str, field: &mut Option<String>) -> Result<(), ValueError> {
        if let Some((v, _, _)) = self.raw(name)? {
            *field = Some(v);
        }
        Ok(())
    }

    /// A Java `int` field.
    pub fn int(&self, name: &str, field: &mut i32) -> Result<(), ValueError> {
        if let Some((v, key, line)) = self.raw(name)? {
            *field = parse_java_int(&v)
                .ok_or_else(|| self.err(&key, line, &v, ValueProblem::NotAnInteger("int")))?;
        }
        Ok(())
    }

    /// A Java `long` field.
    pub fn long(&self, name: &str, field: &mut i64) -> Result<(), ValueError> {
        if let Some((v, key, line)) = self.raw(name)? {
            *field = parse_java_int(&v)
                .ok_or_else(|| self.err(&key, line, &v, ValueProblem::NotAnInteger("long")))?;
        }
        Ok(())
    }

    /// A Java `boolean` field (`true`/`false`, any case).
    pub fn boolean(&self, name: &str, field: &mut bool) -> Result<(), ValueError> {
        if let Some((v, key, line)) = self.raw(name)? {
            *field = if v.eq_ignore_ascii_case("true") {
                true
            } else if v.eq_ignore_ascii_case("false") {
                false
            } else {
                return Err(self.err(&key, line, &v, ValueProblem::NotABoolean));
            };
        }
        Ok(())
    }

    /// A Java `int[]` field (comma-separated).
    pub fn int_array(&self, name: &str, field: &mut Vec<i32>) -> Result<(), ValueError> {
        if let Some((v, key, line)) = self.raw(name)? {
            let mut out = Vec::new();
            for part in split_java(&v) {
                out.push(
                    parse_java_int(java_trim(part)).ok_or_else(|| {
                        self.err(&key, line, &v, ValueProblem::NotAnInteger("int"))
                    })?,
                );
            }
            *field = out;
        }
        Ok(())
    }

    /// A Java `long[]` field (comma-separated).
    pub fn long_array(&self, name: &str, field: &mut Vec<i64>) -> Result<(), ValueError> {
        if let Some((v, key, line)) = self.raw(name)? {
            let mut out = Vec::new();
            for part in split_java(&v) {
                out.push(
                    parse_java_int(java_trim(part)).ok_or_else(|| {
                        self.err(&key, line, &v, ValueProblem::NotAnInteger("long"))
                    })?,
                );
            }
            *field = out;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> Properties {
        Properties::parse_bytes(text.as_bytes(), Some("c.properties".into())).unwrap()
    }

    #[test]
    fn integers_follow_java() {
        let p =
            props("a=+12\nb=-3\nc= 7 \nd=1_0\ne=2147483648\nf=9223372036854775807\ng=0x10\nh=\n");
        let v = VarSource::fixed::<[(&str, &str); 0], &str, &str>([]);
        let r = PropReader::new(&p, &v, "");
        let mut x = 5;
        r.int("a", &mut x).unwrap();
        assert_eq!(x, 12);
        r.int("b", &mut x).unwrap();
        assert_eq!(x, -3);
        r.int("c", &mut x).unwrap();
        assert_eq!(x, 7);
        r.int("h", &mut x).unwrap();
        assert_eq!(x, 7, "blank value leaves the default");
        r.int("missing", &mut x).unwrap();
        assert_eq!(x, 7);
        for bad in ["d", "e", "g"] {
            let e = r.int(bad, &mut x).unwrap_err();
            assert_eq!(e.reason, ValueProblem::NotAnInteger("int"));
            assert_eq!(e.key, bad);
        }
        let mut l = 0i64;
        r.long("e", &mut l).unwrap();
        assert_eq!(l, 2147483648);
        r.long("f", &mut l).unwrap();
        assert_eq!(l, i64::MAX);
    }

    #[test]
    fn booleans_and_arrays() {
        let p = props("t=TRUE\nf=False\nbad=yes\na=1, 2 ,3,,\ncomma=,\nlead=,1\nsp=1,,2\nl=5,6\n");
        let v = VarSource::default();
        let r = PropReader::new(&p, &v, "");
        let mut b = false;
        r.boolean("t", &mut b).unwrap();
        assert!(b);
        r.boolean("f", &mut b).unwrap();
        assert!(!b);
        let e = r.boolean("bad", &mut b).unwrap_err();
        assert_eq!(e.reason, ValueProblem::NotABoolean);
        assert_eq!(e.line, 3);
        let mut a = vec![9];
        r.int_array("a", &mut a).unwrap();
        assert_eq!(a, vec![1, 2, 3]);
        r.int_array("comma", &mut a).unwrap();
        assert!(a.is_empty());
        assert!(r.int_array("lead", &mut a).is_err());
        assert!(r.int_array("sp", &mut a).is_err());
        let mut la = vec![];
        r.long_array("l", &mut la).unwrap();
        assert_eq!(la, vec![5, 6]);
    }

    #[test]
    fn prefix_trim_and_substitution() {
        let p = props("group.1.dataDir = ${D:/x}/y  \ngroup.1.n = ${NOPE}\ngroup.1.s=${P: 5}\n");
        let v = VarSource::fixed([("D", "/d")]);
        let r = PropReader::new(&p, &v, "group.1");
        let mut s = String::new();
        r.string("dataDir", &mut s).unwrap();
        assert_eq!(s, "/d/y");
        let e = r.string("n", &mut s).unwrap_err();
        assert_eq!(e.key, "group.1.n");
        assert_eq!(e.line, 2);
        assert_eq!(
            e.reason,
            ValueProblem::Variable(VarError::Unresolved("NOPE".into()))
        );
        assert!(e
            .to_string()
            .starts_with("c.properties:2: key 'group.1.n' value '${NOPE}'"));
        // The substituted text is not trimmed again, as in the reference.
        let mut i = 0;
        assert!(r.int("s", &mut i).is_err());
    }
}
