//! `${NAME:default}` substitution in property values.
//!
//! Every `${...}` with at least one character inside is replaced by the value of `NAME`
//! looked up first in the explicit overrides (the reference's Java system properties,
//! `-DNAME=value`), then in the process environment, else by `default` (the text after
//! the first `:`). No default and nothing found is an error. Replacements are not
//! scanned again; `${}` is left as it is.

use std::collections::BTreeMap;

/// Where `${NAME}` values come from.
#[derive(Debug, Clone, Default)]
pub struct VarSource {
    /// Values that take precedence over the environment (the reference's `-D` system
    /// properties, e.g. `DATA_DIR` set by its start script).
    pub overrides: BTreeMap<String, String>,
    /// Whether to consult the process environment after the overrides.
    pub use_env: bool,
}

impl VarSource {
    /// Overrides (none) then the process environment: what the server binary uses.
    pub fn from_env() -> VarSource {
        VarSource {
            overrides: BTreeMap::new(),
            use_env: true,
        }
    }

    /// Only the given values, never the environment (tests, embedded use).
    pub fn fixed<I, K, V>(vars: I) -> VarSource
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        VarSource {
            overrides: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            use_env: false,
        }
    }

    /// Looks one name up: overrides first, then (if enabled) the environment.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.overrides.get(name) {
            return Some(v.clone());
        }
        if self.use_env {
            return std::env::var(name).ok();
        }
        None
    }

    /// Replaces every `${NAME:default}` in `value`.
    ///
    /// Errors: [`VarError::Unresolved`] when `NAME` has no value and no default, and
    /// [`VarError::EmptyName`] for `${:...}` (the JDK refuses an empty property name).
    pub fn resolve(&self, value: &str) -> Result<String, VarError> {
        if !value.contains("${") {
            return Ok(value.to_string());
        }
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) if end > 0 => {
                    let expr = &after[..end];
                    let (name, default) = match expr.find(':') {
                        Some(c) => (&expr[..c], Some(&expr[c + 1..])),
                        None => (expr, None),
                    };
                    if name.is_empty() {
                        return Err(VarError::EmptyName);
                    }
                    let resolved = match self.lookup(name) {
                        Some(v) => v,
                        None => match default {
                            Some(d) => d.to_string(),
                            None => return Err(VarError::Unresolved(name.to_string())),
                        },
                    };
                    out.push_str(&rest[..start]);
                    out.push_str(&resolved);
                    rest = &after[end + 1..];
                }
                Some(_) => {
                    // `${}`: not a variable; keep "${" and look further on from the `}`.
                    out.push_str(&rest[..start + 2]);
                    rest = after;
                }
                None => break,
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A `${...}` that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarError {
    /// No override, no environment variable and no default for this name.
    Unresolved(String),
    /// `${:default}`: an empty variable name.
    EmptyName,
}

impl std::fmt::Display for VarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarError::Unresolved(n) => write!(
                f,
                "cannot resolve variable ${{{n}}}: set it in the environment or give a default as ${{{n}:value}}"
            ),
            VarError::EmptyName => write!(f, "empty variable name in ${{:...}}"),
        }
    }
}

impl std::error::Error for VarError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_rules() {
        let v = VarSource::fixed([("DATA_DIR", "/srv/dt"), ("EMPTY", "")]);
        assert_eq!(v.resolve("${DATA_DIR:./data}").unwrap(), "/srv/dt");
        assert_eq!(v.resolve("${NOPE:./data}").unwrap(), "./data");
        assert_eq!(v.resolve("${NOPE:a:b}").unwrap(), "a:b");
        assert_eq!(v.resolve("${NOPE:}").unwrap(), "");
        assert_eq!(v.resolve("${EMPTY:x}").unwrap(), "");
        assert_eq!(
            v.resolve("a${DATA_DIR}/b${NOPE:c}d").unwrap(),
            "a/srv/dt/bcd"
        );
        assert_eq!(v.resolve("${}x").unwrap(), "${}x");
        assert_eq!(v.resolve("${}${DATA_DIR}").unwrap(), "${}/srv/dt");
        assert_eq!(v.resolve("${unterminated").unwrap(), "${unterminated");
        assert_eq!(v.resolve("$DATA_DIR").unwrap(), "$DATA_DIR");
        assert_eq!(v.resolve("${NOPE: 5}").unwrap(), " 5");
        assert_eq!(
            v.resolve("x${NOPE}").unwrap_err(),
            VarError::Unresolved("NOPE".into())
        );
        assert_eq!(v.resolve("${:d}").unwrap_err(), VarError::EmptyName);
    }

    #[test]
    fn replacements_are_not_rescanned() {
        let v = VarSource::fixed([("A", "${B}"), ("B", "no")]);
        assert_eq!(v.resolve("${A}").unwrap(), "${B}");
    }

    #[test]
    fn overrides_beat_environment() {
        // PATH is set in any test environment.
        let env = VarSource::from_env();
        assert_eq!(
            env.resolve("${PATH}").unwrap(),
            std::env::var("PATH").unwrap()
        );
        let mut both = VarSource::from_env();
        both.overrides.insert("PATH".into(), "mine".into());
        assert_eq!(both.resolve("${PATH}").unwrap(), "mine");
        assert!(VarSource::fixed::<[(&str, &str); 0], &str, &str>([])
            .resolve("${PATH}")
            .is_err());
    }
}
