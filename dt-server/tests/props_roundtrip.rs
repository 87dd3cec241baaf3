//! Property test of the `.properties` reader: any set of keys and values, written
//! with escapes and with the syntax's freedoms (three separators, blanks, comments,
//! blank lines, any line end, continuation lines), reads back exactly.

use dt_server::props::{escape_key, escape_value, Properties};
use proptest::prelude::*;

/// One written entry's layout choices.
#[derive(Debug, Clone)]
struct Layout {
    sep: usize,
    eol: usize,
    comment_before: bool,
    blank_before: bool,
    indent: usize,
    split_at: Option<usize>,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        0usize..6,
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        proptest::option::of(0usize..40),
    )
        .prop_map(
            |(sep, eol, comment_before, blank_before, indent, split_at)| Layout {
                sep,
                eol,
                comment_before,
                blank_before,
                indent,
                split_at,
            },
        )
}

/// Where an escaped value may be cut for a continuation line: not inside an escape,
/// and not where the next line would start with a blank (it would be dropped).
fn cut_points(escaped: &str) -> Vec<usize> {
    let b = escaped.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if i > 0 && b[i] != b' ' && b[i] != b'\t' {
            out.push(i);
        }
        if b[i] == b'\\' {
            i += if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
        } else {
            i += 1;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn written_entries_read_back(
        entries in proptest::collection::btree_map(
            "[a-zA-Z0-9.=: #!\\\\\t\u{e9}\u{263a}]{1,10}",
            "[a-zA-Z0-9.=: #!\\\\\t\n\r\u{e9}\u{263a}${}]{0,16}",
            0..8),
        layouts in proptest::collection::vec(layout(), 8),
    ) {
        const SEPS: [&str; 6] = ["=", ":", " ", " = ", "\t: ", "  "];
        const EOLS: [&str; 3] = ["\n", "\r\n", "\r"];
        let mut text = String::new();
        for ((k, v), l) in entries.iter().zip(layouts.iter()) {
            let eol = EOLS[l.eol];
            if l.blank_before {
                text.push_str("   ");
                text.push_str(eol);
            }
            if l.comment_before {
                text.push_str(if l.eol == 0 { "# note = x \\" } else { "! other" });
                text.push_str(eol);
            }
            text.push_str(&" ".repeat(l.indent));
            text.push_str(&escape_key(k));
            text.push_str(SEPS[l.sep]);
            let ev = escape_value(v);
            let cuts = cut_points(&ev);
            match l.split_at.and_then(|s| if cuts.is_empty() { None } else { Some(cuts[s % cuts.len()]) }) {
                Some(c) => {
                    text.push_str(&ev[..c]);
                    text.push('\\');
                    text.push_str(eol);
                    text.push_str("    ");
                    text.push_str(&ev[c..]);
                }
                None => text.push_str(&ev),
            }
            text.push_str(eol);
        }
        // Escapes put non-ASCII as \uXXXX, so the text is ASCII: bytes = chars.
        prop_assert!(text.is_ascii());
        let p = Properties::parse_bytes(text.as_bytes(), None).unwrap();
        prop_assert_eq!(p.len(), entries.len(), "{:?}", text);
        for (k, v) in &entries {
            prop_assert_eq!(p.get(k), Some(v.as_str()), "{:?}", text);
        }
    }
}
