//! Property tests: the channel and the condition against simple models, on virtual time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use dt_fiber::{FiberCondition, Simulation};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// The test offers this many items.
    Offer(u8),
    /// A new taker fiber starts, with a timeout in ms (0 = none).
    Taker(u8),
    /// Virtual time moves by this many ms.
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..4).prop_map(Op::Offer),
        (0u8..5).prop_map(Op::Taker),
        (1u8..5).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Items come out in offer order, each exactly once; takers that time out get
    /// nothing; what nobody took is still queued.
    #[test]
    fn channel_is_fifo_and_loses_nothing(ops in proptest::collection::vec(op(), 1..40)) {
        let mut sim = Simulation::new(7);
        let g = sim.new_group("g");
        let ch = g.new_channel::<u32>();
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut next = 0u32;
        for o in ops {
            match o {
                Op::Offer(n) => for _ in 0..n { ch.offer(next); next += 1; },
                Op::Taker(t) => {
                    let (ch, got) = (ch.clone(), got.clone());
                    g.spawn("taker", async move {
                        let v = if t == 0 {
                            Some(ch.take().await.unwrap())
                        } else {
                            ch.take_timeout(Duration::from_millis(t as u64)).await.unwrap()
                        };
                        if let Some(v) = v { got.borrow_mut().push(v); }
                    }).unwrap();
                }
                Op::Advance(ms) => sim.run_for(Duration::from_millis(ms as u64)),
            }
            sim.run_until_idle();
        }
        let mut all = got.borrow().clone();
        while let Some(v) = ch.try_take() { all.push(v); }
        let taken = got.borrow().len();
        // Takes happen in order, and the rest stays queued in order.
        prop_assert_eq!(all, (0..next).collect::<Vec<_>>());
        prop_assert!(taken <= next as usize);
    }

    /// signal wakes exactly one waiter (the oldest), signal_all wakes all.
    #[test]
    fn condition_matches_fifo_model(ops in proptest::collection::vec(0u8..3, 1..40)) {
        let mut sim = Simulation::new(1);
        let g = sim.new_group("g");
        let cond = FiberCondition::new("c");
        let woken = Rc::new(RefCell::new(Vec::new()));
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut expected = Vec::new();
        let mut id = 0u32;
        for o in ops {
            match o {
                0 => {
                    let (c, w, me) = (cond.clone(), woken.clone(), id);
                    g.spawn("waiter", async move {
                        c.wait().await.unwrap();
                        w.borrow_mut().push(me);
                    }).unwrap();
                    model.push_back(id);
                    id += 1;
                    sim.run_until_idle();
                }
                1 => {
                    let had = cond.signal();
                    prop_assert_eq!(had, !model.is_empty());
                    if let Some(x) = model.pop_front() { expected.push(x); }
                }
                _ => {
                    let n = cond.signal_all();
                    prop_assert_eq!(n, model.len());
                    expected.extend(model.drain(..));
                }
            }
            sim.run_until_idle();
            prop_assert_eq!(&*woken.borrow(), &expected);
        }
    }
}
