//! The linearizability checker on known histories, the JSON-lines format, and random
//! histories that are linearizable by construction (and stop being so when mutated).

use dt_raft::sim::gen::{random_history, GenConfig};
use dt_raft::sim::history::{operations, Event, EventType, History, HistoryError, OpFn};
use dt_raft::sim::jsonl::{format_event, parse_event, read_history, write_history, ReadErrorKind};
use dt_raft::sim::lincheck::{check_events, CheckConfig, Report, Verdict, Violation};
use proptest::prelude::*;

fn check(h: &History) -> Report {
    check_events(&h.events, &CheckConfig::default()).expect("well-formed history")
}

fn assert_ok(h: &History) {
    let r = check(h);
    assert_eq!(r.verdict, Verdict::Linearizable, "{:?}", h.events);
}

fn violation(h: &History) -> Violation {
    match check(h).verdict {
        Verdict::Violation(v) => *v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

// ---- linearizable ----

#[test]
fn empty_and_sequential() {
    assert_ok(&History::new());
    let mut h = History::new();
    h.get(0, 1).ok(0, None);
    h.put(0, 1, 5).ok(0, None);
    h.get(0, 1).ok(0, Some(5));
    h.remove(0, 1).ok(0, None);
    h.remove(0, 1).ok_false(0);
    h.get(0, 1).ok(0, None);
    assert_ok(&h);
}

#[test]
fn concurrent_put_and_get_either_order() {
    for read in [None, Some(1)] {
        let mut h = History::new();
        h.put(0, 1, 1).get(1, 1).ok(1, read).ok(0, None);
        h.get(1, 1).ok(1, Some(1));
        assert_ok(&h);
    }
}

#[test]
fn concurrent_puts_seen_in_one_order() {
    // Two overlapping writes; both readers agree 2 came last.
    let mut h = History::new();
    h.put(0, 1, 1).put(1, 1, 2);
    h.get(2, 1).get(3, 1).ok(2, Some(1)).ok(3, Some(1));
    h.get(2, 1).get(3, 1).ok(2, Some(2)).ok(3, Some(2));
    h.ok(0, None).ok(1, None);
    h.get(2, 1).ok(2, Some(2));
    assert_ok(&h);
}

#[test]
fn info_write_that_took_effect_late() {
    // The write's outcome is unknown; it shows up long after, then stays.
    let mut h = History::new();
    h.put(0, 1, 7).info(0);
    h.get(1, 1).ok(1, None);
    h.get(1, 1).ok(1, None);
    h.get(1, 1).ok(1, Some(7));
    h.get(1, 1).ok(1, Some(7));
    assert_ok(&h);
}

#[test]
fn info_write_that_never_took_effect() {
    let mut h = History::new();
    h.put(0, 1, 7).info(0);
    h.put(2, 1, 3).ok(2, None);
    h.get(1, 1).ok(1, Some(3));
    // An invoke never completed counts as unknown too.
    h.put(3, 1, 9);
    h.get(1, 1).ok(1, Some(3));
    assert_ok(&h);
}

#[test]
fn failed_write_did_not_happen() {
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.put(0, 1, 2).fail(0);
    h.get(1, 1).ok(1, Some(1));
    assert_ok(&h);
}

#[test]
fn cas_success_and_failure() {
    let mut h = History::new();
    h.cas(0, 1, None, Some(1)).ok(0, None); // create if absent
    h.cas(0, 1, None, Some(2)).ok_false(0); // already there
    h.cas(1, 1, Some(5), Some(2)).fail_false(1); // compare failed, recorded as fail
    h.cas(0, 1, Some(1), Some(3)).ok(0, None);
    h.get(1, 1).ok(1, Some(3));
    h.cas(0, 1, Some(3), None).ok(0, None); // delete if equal
    h.get(1, 1).ok(1, None);
    assert_ok(&h);
}

#[test]
fn concurrent_cas_only_one_wins() {
    let mut h = History::new();
    h.put(0, 1, 0).ok(0, None);
    h.cas(1, 1, Some(0), Some(1)).cas(2, 1, Some(0), Some(2));
    h.ok_false(1).ok(2, None);
    h.get(0, 1).ok(0, Some(2));
    assert_ok(&h);
}

#[test]
fn keys_are_independent() {
    let mut h = History::new();
    h.put(0, 1, 1).put(1, 2, 2).ok(0, None).ok(1, None);
    h.get(0, 2).get(1, 1).ok(0, Some(2)).ok(1, Some(1));
    let r = check(&h);
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.keys, 2);
}

// ---- not linearizable ----

#[test]
fn stale_read_after_completed_write() {
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.put(0, 1, 2).ok(0, None);
    h.get(1, 1).ok(1, Some(1));
    let v = violation(&h);
    assert_eq!(v.key, 1);
    assert_eq!(v.prefix.len(), 2);
    assert_eq!(v.state, Some(2));
    let text = v.to_string();
    assert!(text.contains("get(1) -> 1"), "{text}");
}

#[test]
fn read_of_a_value_never_written() {
    let mut h = History::new();
    h.put(0, 1, 1).get(1, 1).ok(1, Some(42)).ok(0, None);
    let v = violation(&h);
    assert_eq!(v.stuck.action, dt_raft::sim::history::Action::Get(Some(42)));
}

#[test]
fn lost_acknowledged_write() {
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.get(1, 1).ok(1, None);
    assert_eq!(violation(&h).state, Some(1));
}

#[test]
fn failed_write_observed() {
    let mut h = History::new();
    h.put(0, 1, 1).fail(0);
    h.get(1, 1).ok(1, Some(1));
    violation(&h);
}

#[test]
fn info_write_flickers() {
    // An unknown write may take effect once, not appear, vanish and come back.
    let mut h = History::new();
    h.put(0, 1, 7).info(0);
    h.put(2, 1, 3).ok(2, None);
    h.get(1, 1).ok(1, Some(7));
    h.get(1, 1).ok(1, Some(3));
    h.get(1, 1).ok(1, Some(7));
    violation(&h);
}

#[test]
fn cas_succeeded_against_a_value_that_could_not_be_there() {
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.cas(1, 1, Some(2), Some(3)).ok(1, None);
    violation(&h);
    // Also a create-if-absent that succeeded over a present value.
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.cas(1, 1, None, Some(3)).ok(1, None);
    violation(&h);
    // And a compare that "failed" though the value matched.
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.cas(1, 1, Some(1), Some(3)).ok_false(1);
    violation(&h);
}

#[test]
fn remove_of_a_missing_key_that_claims_success() {
    let mut h = History::new();
    h.remove(0, 1).ok(0, None);
    violation(&h);
}

#[test]
fn contradictory_orders_of_concurrent_writes() {
    // put 1 and put 2 overlap everything; reader 2 sees 1 then 2, reader 3 sees 2
    // then 1: no single order of the writes explains both.
    let mut h = History::new();
    h.put(0, 1, 1).put(1, 1, 2);
    h.get(2, 1).get(3, 1).ok(2, Some(1)).ok(3, Some(2));
    h.get(2, 1).get(3, 1).ok(2, Some(2)).ok(3, Some(1));
    h.ok(0, None).ok(1, None);
    let v = violation(&h);
    assert_eq!(v.key, 1);
    assert!(!v.window.is_empty());
}

#[test]
fn violation_is_on_the_right_key() {
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.put(0, 2, 1).ok(0, None);
    h.get(0, 1).ok(0, Some(1));
    h.get(0, 2).ok(0, Some(9));
    assert_eq!(violation(&h).key, 2);
}

#[test]
fn budget_gives_unknown() {
    let h = random_history(
        7,
        &GenConfig {
            operations: 400,
            ..GenConfig::default()
        },
    );
    let r = check_events(
        &h,
        &CheckConfig {
            max_steps_per_key: 10,
        },
    )
    .unwrap();
    assert!(matches!(r.verdict, Verdict::Unknown { ref keys } if !keys.is_empty()));
}

#[test]
fn badly_paired_histories_are_errors() {
    let mut h = History::new();
    h.ok(0, None);
    assert_eq!(
        operations(&h.events),
        Err(HistoryError::CompletionWithoutInvoke {
            index: 0,
            process: 0
        })
    );
    let mut h = History::new();
    h.put(0, 1, 1).get(0, 1);
    assert_eq!(
        operations(&h.events),
        Err(HistoryError::InvokeWhilePending {
            index: 1,
            process: 0
        })
    );
    let mut h = History::new();
    h.put(0, 1, 1).ok(0, None);
    h.events[1].key = 2;
    assert_eq!(
        operations(&h.events),
        Err(HistoryError::CompletionMismatch {
            index: 1,
            process: 0
        })
    );
    let mut h = History::new();
    h.put(0, 1, 1).fail(0);
    h.events[1].result = Some(true);
    assert!(matches!(
        operations(&h.events),
        Err(HistoryError::FailWithTrueResult { .. })
    ));
}

// ---- JSON lines ----

#[test]
fn jsonl_round_trip_and_format() {
    let mut h = History::new();
    h.at(1200).cas(0, 1, None, Some(5)).ok(0, None);
    h.remove(1, 2).fail_false(1);
    h.get(2, -3).ok(2, Some(-7));
    assert_eq!(
        format_event(&h.events[0]),
        r#"{"process":0,"type":"invoke","f":"cas","key":1,"value":5,"expected":null,"time":1200}"#
    );
    assert_eq!(
        format_event(&h.events[3]),
        r#"{"process":1,"type":"fail","f":"remove","key":2,"value":null,"expected":null,"time":1203,"result":false}"#
    );
    let mut buf = Vec::new();
    write_history(&mut buf, &h.events).unwrap();
    let back = read_history(&buf[..]).unwrap();
    assert_eq!(back, h.events);
    // Any field order, blanks, missing optional fields, unknown scalar fields.
    let e = parse_event(
        r#" { "time" : 5, "key":-1, "f":"get", "type":"ok", "process":3, "extra":"x\u00e9\n", "value": 9 } "#,
    )
    .unwrap();
    assert_eq!(
        e,
        Event {
            process: 3,
            ty: EventType::Ok,
            f: OpFn::Get,
            key: -1,
            value: Some(9),
            expected: None,
            result: None,
            time_ns: 5
        }
    );
}

#[test]
fn jsonl_malformed_lines_are_typed_errors() {
    let good =
        r#"{"process":0,"type":"invoke","f":"put","key":1,"value":5,"expected":null,"time":1}"#;
    type Is = fn(&ReadErrorKind) -> bool;
    let cases: &[(&str, Is)] = &[
        ("{", |k| matches!(k, ReadErrorKind::Syntax { .. })),
        (r#"{"process":0"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        (r#"{"process":0}}"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        (r#"{"process":01}"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        (r#"{"process":[1]}"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        (r#"{"a":"\x"}"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        (r#"{"a":"\ud800"}"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        (r#"{"a":"\u12"}"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        (r#"{"a":tru}"#, |k| {
            matches!(k, ReadErrorKind::Syntax { .. })
        }),
        ("[]", |k| matches!(k, ReadErrorKind::Syntax { .. })),
        (r#"{"type":"invoke"}"#, |k| {
            matches!(k, ReadErrorKind::MissingField("process"))
        }),
        (r#"{"process":1,"process":2}"#, |k| {
            matches!(k, ReadErrorKind::DuplicateField(_))
        }),
        (
            r#"{"process":-1,"type":"invoke","f":"put","key":1,"time":1}"#,
            |k| {
                matches!(
                    k,
                    ReadErrorKind::BadValue {
                        field: "process",
                        ..
                    }
                )
            },
        ),
        (
            r#"{"process":1,"type":"begin","f":"put","key":1,"time":1}"#,
            |k| matches!(k, ReadErrorKind::BadValue { field: "type", .. }),
        ),
        (
            r#"{"process":1,"type":"ok","f":"append","key":1,"time":1}"#,
            |k| matches!(k, ReadErrorKind::BadValue { field: "f", .. }),
        ),
        (
            r#"{"process":1,"type":"ok","f":"put","key":1.5,"time":1}"#,
            |k| matches!(k, ReadErrorKind::BadValue { field: "key", .. }),
        ),
        (
            r#"{"process":1,"type":"ok","f":"put","key":1,"value":99999999999999999999,"time":1}"#,
            |k| matches!(k, ReadErrorKind::BadValue { field: "value", .. }),
        ),
        (
            r#"{"process":1,"type":"ok","f":"put","key":1,"result":1,"time":1}"#,
            |k| {
                matches!(
                    k,
                    ReadErrorKind::BadValue {
                        field: "result",
                        ..
                    }
                )
            },
        ),
        (r#"{"process":1,"type":"ok","f":"put","key":1}"#, |k| {
            matches!(k, ReadErrorKind::MissingField("time"))
        }),
    ];
    for (line, is) in cases {
        let input = format!("{good}\n\n{line}\n{good}\n");
        let err = read_history(input.as_bytes()).expect_err(line);
        assert_eq!(err.line, 3, "{line}");
        assert!(is(&err.kind), "{line}: {err}");
    }
    // Invalid UTF-8 is an I/O error, not a panic.
    let err = read_history(&b"{\"a\":\"\xff\"}\n"[..]).unwrap_err();
    assert!(matches!(err.kind, ReadErrorKind::Io(_)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the reader.
    #[test]
    fn jsonl_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = read_history(&bytes[..]);
    }

    /// Arbitrary lines built from the format's own tokens never panic the parser.
    #[test]
    fn jsonl_parser_never_panics(parts in proptest::collection::vec(
        prop::sample::select(vec!["{", "}", "\"process\"", ":", ",", "1", "-", "null",
            "\"ok\"", "\"\\u", "d800", "\\", "\"", "[", "1e5", " ", "true"]), 0..30)) {
        let _ = parse_event(&parts.concat());
    }

    /// Histories produced by a sequential model with random overlaps are linearizable;
    /// written and read back they are the same.
    #[test]
    fn generated_histories_are_linearizable(
        seed in any::<u64>(),
        operations in 1usize..150,
        processes in 1u64..8,
        keys in 1i64..4,
        info_percent in 0u32..30,
    ) {
        let cfg = GenConfig { operations, processes, keys, values: 4, info_percent, fail_percent: 10 };
        let h = random_history(seed, &cfg);
        let r = check_events(&h, &CheckConfig::default()).unwrap();
        prop_assert_eq!(r.verdict, Verdict::Linearizable);
        let mut buf = Vec::new();
        write_history(&mut buf, &h).unwrap();
        prop_assert_eq!(read_history(&buf[..]).unwrap(), h);
    }

    /// Changing one completed read to a value no write produced is always caught.
    /// (Few unknown outcomes here: proving a violation means exhausting the search,
    /// which grows exponentially with the unknown-outcome writes pending on one key.)
    #[test]
    fn a_read_of_an_unwritten_value_is_caught(
        seed in any::<u64>(),
        operations in 1usize..150,
        processes in 1u64..8,
        keys in 1i64..4,
        info_percent in 0u32..5,
        pick in any::<prop::sample::Index>(),
    ) {
        let cfg = GenConfig { operations, processes, keys, values: 4, info_percent, fail_percent: 10 };
        let mut h = random_history(seed, &cfg);
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| h[i].ty == EventType::Ok && h[i].f == OpFn::Get)
            .collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick.index(reads.len())];
        h[i].value = Some(1000);
        let key = h[i].key;
        let r = check_events(&h, &CheckConfig::default()).unwrap();
        match r.verdict {
            Verdict::Violation(v) => prop_assert_eq!(v.key, key),
            other => prop_assert!(false, "not caught: {:?}", other),
        }
    }
}

#[test]
fn thousands_of_ops_check_fast() {
    let cfg = GenConfig {
        operations: 3000,
        processes: 8,
        keys: 5,
        ..GenConfig::default()
    };
    let h = random_history(42, &cfg);
    let start = std::time::Instant::now();
    let r = check_events(&h, &CheckConfig::default()).unwrap();
    let took = start.elapsed();
    assert_eq!(r.verdict, Verdict::Linearizable);
    println!(
        "checked {} ops on {} keys in {:?} ({} steps)",
        r.operations, r.keys, took, r.steps
    );
}

/// A history with many unknown-outcome writes pending on one key (56 of 102
/// operations; a proptest case of `generated_histories_are_linearizable` once ran out
/// of the default 10M steps on it) is found linearizable in few steps.
#[test]
fn many_unknown_outcome_writes_are_decided_quickly() {
    let cfg = GenConfig {
        operations: 127,
        processes: 2,
        keys: 1,
        values: 4,
        info_percent: 28,
        fail_percent: 10,
    };
    let h = random_history(5679750382082954808, &cfg);
    let small = CheckConfig {
        max_steps_per_key: 100_000,
    };
    let r = check_events(&h, &small).unwrap();
    assert_eq!(r.verdict, Verdict::Linearizable);
}

#[test]
fn unknown_writes_used_as_often_as_they_were_issued() {
    // Two unknown put(1)s explain two separate appearances of 1; one does not.
    for twice in [true, false] {
        let mut h = History::new();
        h.put(0, 1, 1).info(0);
        if twice {
            h.put(3, 1, 1).info(3);
        }
        h.get(1, 1).ok(1, Some(1));
        h.put(2, 1, 2).ok(2, None);
        h.get(1, 1).ok(1, Some(1));
        let r = check(&h);
        assert_eq!(r.verdict == Verdict::Linearizable, twice, "{:?}", r.verdict);
    }
    // A chain of unknown writes: put(1) then cas(1 -> 2), before the read of 2.
    let mut h = History::new();
    h.cas(0, 1, Some(1), Some(2)).info(0);
    h.put(1, 1, 1).info(1);
    h.get(2, 1).ok(2, Some(2));
    assert_ok(&h);
}
