//! Fiber primitives, driven deterministically by a Simulation on virtual time.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use dt_fiber::{
    sleep, sleep_until_shutdown, yield_now, FiberCondition, FiberError, FiberFuture, FiberOptions,
    Signaled, Simulation,
};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(l: &Log, s: impl Into<String>) {
    l.borrow_mut().push(s.into());
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn spawn_runs_and_sleep_uses_virtual_time() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let l = log();
    for (name, ms) in [("a", 30u64), ("b", 10), ("c", 20)] {
        let l = l.clone();
        g.spawn(name, async move {
            sleep(MS * ms as u32).await.unwrap();
            push(&l, format!("{name}@{}", dt_fiber::now().unwrap().nano_time));
        })
        .unwrap();
    }
    sim.run_until_idle();
    assert!(l.borrow().is_empty());
    assert_eq!(g.fiber_count(), 3);
    assert!(sim.advance_to_next_timer());
    assert_eq!(l.borrow().len(), 1);
    assert!(sim.run_until(|| l.borrow().len() == 3, Duration::from_secs(1)));
    let base = 1_000_000_000i64;
    assert_eq!(
        *l.borrow(),
        vec![
            format!("b@{}", base + 10_000_000),
            format!("c@{}", base + 20_000_000),
            format!("a@{}", base + 30_000_000)
        ]
    );
    assert_eq!(sim.elapsed(), MS * 30);
    assert_eq!(g.fiber_count(), 0);
    assert!(!sim.advance_to_next_timer());
}

#[test]
fn yield_lets_others_run_in_rounds() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let l = log();
    for name in ["x", "y"] {
        let l = l.clone();
        g.spawn(name, async move {
            for i in 0..3 {
                push(&l, format!("{name}{i}"));
                yield_now().await;
            }
        })
        .unwrap();
    }
    sim.run_until_idle();
    assert_eq!(*l.borrow(), ["x0", "y0", "x1", "y1", "x2", "y2"]);
}

#[test]
fn condition_signal_is_fifo_and_signal_all_wakes_everyone() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let cond = FiberCondition::new("c");
    let l = log();
    for name in ["w1", "w2", "w3"] {
        let (l, c) = (l.clone(), cond.clone());
        g.spawn(name, async move {
            c.wait().await.unwrap();
            push(&l, name);
        })
        .unwrap();
    }
    sim.run_until_idle();
    assert_eq!(cond.waiter_count(), 3);
    assert!(cond.signal());
    sim.run_until_idle();
    assert_eq!(*l.borrow(), ["w1"]);
    assert_eq!(cond.signal_all(), 2);
    sim.run_until_idle();
    assert_eq!(*l.borrow(), ["w1", "w2", "w3"]);
    assert!(!cond.signal());
    assert_eq!(cond.signal_all(), 0);
}

#[test]
fn condition_wait_timeout_and_wait_either() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let (a, b) = (FiberCondition::new("a"), FiberCondition::new("b"));
    let l = log();
    {
        let (l, a, b) = (l.clone(), a.clone(), b.clone());
        g.spawn("t", async move {
            let r = a.wait_timeout(MS * 5).await.unwrap();
            push(&l, format!("timeout-signalled={r}"));
            let r = a.wait_either(&b, None).await.unwrap();
            push(&l, format!("{r:?}"));
            let r = a.wait_either(&b, Some(MS * 5)).await.unwrap();
            push(&l, format!("{r:?}"));
            let r = b.wait_timeout(MS * 100).await.unwrap();
            push(&l, format!("signalled={r}"));
        })
        .unwrap();
    }
    sim.run_for(MS * 6);
    assert_eq!(*l.borrow(), ["timeout-signalled=false"]);
    b.signal();
    sim.run_until_idle();
    assert_eq!(l.borrow()[1], "Second");
    // The stale registration on `a` from the second wait must not eat this signal.
    sim.run_for(MS * 6);
    assert_eq!(l.borrow()[2], "Timeout");
    assert!(b.signal());
    sim.run_until_idle();
    assert_eq!(l.borrow()[3], "signalled=true");
    assert_eq!(Signaled::First, Signaled::First);
}

#[test]
fn future_first_completion_wins_and_all_waiters_see_it() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let f: FiberFuture<u32> = g.new_future();
    let l = log();
    for name in ["r1", "r2"] {
        let (l, f) = (l.clone(), f.clone());
        g.spawn(name, async move {
            let v = f.get().await.unwrap();
            push(&l, format!("{name}={v}"));
        })
        .unwrap();
    }
    sim.run_until_idle();
    assert!(f.complete(5));
    assert!(!f.complete(6));
    assert!(!f.fail(FiberError::Interrupted));
    sim.run_until_idle();
    assert_eq!(*l.borrow(), ["r1=5", "r2=5"]);
    assert!(f.is_done());
}

#[test]
fn future_timeout_take_map_all_of() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let l = log();
    let slow: FiberFuture<String> = g.new_future();
    let a: FiberFuture<u32> = g.new_future();
    let b: FiberFuture<u32> = g.new_future();
    let mapped = a.map(|v| v * 10);
    let all = FiberFuture::all_of(&g, &[a.clone(), b.clone()]);
    {
        let (l, slow) = (l.clone(), slow.clone());
        g.spawn("t", async move {
            match slow.get_timeout(MS * 3).await {
                Err(FiberError::Timeout { .. }) => push(&l, "timeout"),
                other => push(&l, format!("unexpected {other:?}")),
            }
            let v = slow.take().await.unwrap();
            push(&l, v);
            match slow.take().await {
                Err(FiberError::ResultTaken) => push(&l, "taken"),
                other => push(&l, format!("unexpected {other:?}")),
            }
            push(&l, format!("mapped={}", mapped.await.unwrap()));
            all.await.unwrap();
            push(&l, "all");
        })
        .unwrap();
    }
    sim.run_for(MS * 4);
    assert_eq!(*l.borrow(), ["timeout"]);
    slow.complete("not clone needed".to_string());
    a.complete(4);
    sim.run_until_idle();
    assert_eq!(
        *l.borrow(),
        ["timeout", "not clone needed", "taken", "mapped=40"]
    );
    b.complete(1);
    sim.run_until_idle();
    assert_eq!(l.borrow().last().map(String::as_str), Some("all"));

    // all_of fails with the first failure; empty all_of is complete.
    let c: FiberFuture<u32> = g.new_future();
    let all2 = FiberFuture::all_of(&g, std::slice::from_ref(&c));
    c.fail(FiberError::Cancelled("x".into()));
    assert!(all2.is_done());
    assert!(FiberFuture::<u32>::all_of(&g, &[]).is_done());
    let done = FiberFuture::completed(&g, 3u8);
    assert!(done.is_done());
    let failed = FiberFuture::<u8>::failed(&g, FiberError::Interrupted);
    let seen = Rc::new(Cell::new(false));
    let s2 = seen.clone();
    failed.on_complete(move |r| s2.set(r.is_err()));
    assert!(seen.get());
}

#[test]
fn future_completed_from_another_thread_and_dropped_completer_cancels() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let f: FiberFuture<u64> = g.new_future();
    let f2: FiberFuture<u64> = g.new_future();
    let c = f.completer().unwrap();
    let c2 = f2.completer().unwrap();
    let l = log();
    {
        let (l, f, f2) = (l.clone(), f.clone(), f2.clone());
        g.spawn("t", async move {
            push(&l, format!("{:?}", f.await));
            match f2.await {
                Err(FiberError::Cancelled(_)) => push(&l, "cancelled"),
                other => push(&l, format!("unexpected {other:?}")),
            }
        })
        .unwrap();
    }
    sim.run_until_idle();
    std::thread::spawn(move || {
        c.complete(99).unwrap();
        drop(c2);
    })
    .join()
    .unwrap();
    sim.run_until_idle();
    assert_eq!(*l.borrow(), ["Ok(99)", "cancelled"]);
}

#[test]
fn channel_offer_take_timeout_take_all() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let ch = g.new_channel::<u32>();
    let l = log();
    {
        let (l, ch) = (l.clone(), ch.clone());
        g.spawn("consumer", async move {
            push(&l, format!("{}", ch.take().await.unwrap()));
            push(&l, format!("{:?}", ch.take_timeout(MS * 2).await.unwrap()));
            let mut buf = Vec::new();
            let n = ch.take_all(&mut buf, None, false).await.unwrap();
            push(&l, format!("{n}:{buf:?}"));
            let n = ch.take_all(&mut buf, Some(MS), false).await.unwrap();
            push(&l, format!("{n}"));
        })
        .unwrap();
    }
    sim.run_until_idle();
    ch.offer(1);
    sim.run_until_idle();
    sim.run_for(MS * 3);
    assert_eq!(*l.borrow(), ["1", "None"]);
    ch.offer(2);
    ch.offer(3);
    assert_eq!(ch.len(), 2);
    sim.run_until_idle();
    sim.run_for(MS * 2);
    assert_eq!(*l.borrow(), ["1", "None", "2:[2, 3]", "0"]);
    assert!(ch.is_empty());
    ch.offer(4);
    assert_eq!(ch.try_take(), Some(4));
}

#[test]
fn channel_take_all_keeps_each_source_in_order() {
    // take_all hands whole buffers over when it can (remote items into an empty queue,
    // the queue into an empty `out`). Whatever the mix, every item comes out once, the
    // remote ones in their offer order and the local ones in theirs (a remote item is
    // in the channel once the dispatcher has drained it, so the two kinds interleave by
    // arrival), and an `out` that was not empty keeps its items first.
    const LOCAL: u32 = 1 << 20;
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let ch = g.new_channel::<u32>();
    let sender = ch.sender();
    let rounds: Rc<RefCell<Vec<Vec<u32>>>> = Rc::new(RefCell::new(Vec::new()));
    let taken = Rc::new(Cell::new(0u32));
    {
        let (ch, rounds, taken) = (ch.clone(), rounds.clone(), taken.clone());
        g.spawn_with(FiberOptions::new("consumer").daemon(), async move {
            let mut buf = Vec::new();
            loop {
                // every other take keeps what the last one left in `out`
                if taken.get() % 2 == 0 {
                    buf.clear();
                }
                if ch.take_all(&mut buf, None, false).await.is_err() {
                    return;
                }
                rounds.borrow_mut().push(buf.clone());
                taken.set(taken.get() + 1);
            }
        })
        .unwrap();
    }
    sim.run_until_idle();
    let (mut remote, mut local) = (0u32, 0u32);
    for round in 0..60u32 {
        // remote items (into an empty queue), mostly a local one, then more remote
        // ones (into a queue that may not be empty)
        for _ in 0..(round % 5) {
            sender.offer(remote).unwrap();
            remote += 1;
        }
        if round % 4 != 1 {
            ch.offer(LOCAL + local);
            local += 1;
        }
        if round % 3 == 0 {
            for _ in 0..3 {
                sender.offer(remote).unwrap();
                remote += 1;
            }
        }
        sim.run_until_idle();
    }
    let rounds = rounds.borrow();
    // every take after an even-numbered one starts with that one's items
    for (i, r) in rounds.iter().enumerate() {
        if i % 2 == 1 {
            assert!(
                r.starts_with(&rounds[i - 1]),
                "take {i} lost the items left in out"
            );
        }
    }
    // the takes that began with an empty `out`, plus the odd takes' new items, are
    // every item once, each kind in order
    let mut all = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        let fresh = if i % 2 == 1 {
            &r[rounds[i - 1].len()..]
        } else {
            &r[..]
        };
        all.extend_from_slice(fresh);
    }
    let remotes: Vec<u32> = all.iter().copied().filter(|v| *v < LOCAL).collect();
    let locals: Vec<u32> = all
        .iter()
        .copied()
        .filter(|v| *v >= LOCAL)
        .map(|v| v - LOCAL)
        .collect();
    assert_eq!(remotes, (0..remote).collect::<Vec<_>>());
    assert_eq!(locals, (0..local).collect::<Vec<_>>());
}

#[test]
fn channel_cross_thread_sender_and_rejection() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let ch = g.new_channel::<u32>();
    let got = Rc::new(RefCell::new(Vec::new()));
    {
        let (got, ch) = (got.clone(), ch.clone());
        g.spawn_with(FiberOptions::new("consumer").daemon(), async move {
            while let Ok(v) = ch.take().await {
                got.borrow_mut().push(v);
            }
        })
        .unwrap();
    }
    let sender = ch.sender();
    let rejected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let r2 = rejected.clone();
    let rej_sender = ch.sender_with_reject(move |v, _e| r2.lock().unwrap().push(v));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let s = sender.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    s.offer(t * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    sim.run_until_idle();
    assert_eq!(got.borrow().len(), 1000);
    // Per-thread order is kept.
    for t in 0..4u32 {
        let mine: Vec<u32> = got
            .borrow()
            .iter()
            .copied()
            .filter(|v| v / 1000 == t)
            .collect();
        assert_eq!(mine, (0..250).map(|i| t * 1000 + i).collect::<Vec<_>>());
    }
    // Accepted but arriving after the group finished -> reject handler.
    rej_sender.offer(7).unwrap();
    g.request_shutdown();
    assert!(sim.stop(Duration::from_secs(1)) || g.is_finished());
    sim.run_until_idle();
    assert!(g.is_finished());
    // Rejected synchronously now.
    let e = sender.offer(8).unwrap_err();
    assert_eq!(e.item, 8);
    assert!(matches!(e.reason, FiberError::GroupFinished { .. }));
    // The item 7 was either delivered before finishing or rejected; never lost.
    let delivered = got.borrow().contains(&7);
    assert!(delivered || rejected.lock().unwrap().contains(&7));
}

#[test]
fn take_or_stop_and_sleep_until_shutdown_return_on_shutdown() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let ch = g.new_channel::<u32>();
    let l = log();
    {
        let (l, ch) = (l.clone(), ch.clone());
        g.spawn("taker", async move {
            push(
                &l,
                format!("take={:?}", ch.take_or_stop(None).await.unwrap()),
            );
        })
        .unwrap();
    }
    {
        let l = l.clone();
        g.spawn("sleeper", async move {
            let r = sleep_until_shutdown(Duration::from_secs(3600))
                .await
                .unwrap();
            push(&l, format!("woke_by_stop={r}"));
        })
        .unwrap();
    }
    sim.run_for(MS * 10);
    assert!(l.borrow().is_empty());
    g.request_shutdown();
    sim.run_until_idle();
    assert_eq!(*l.borrow(), ["take=None", "woke_by_stop=true"]);
    assert!(g.is_finished());
    assert!(sim.elapsed() < Duration::from_secs(1));
}

#[test]
fn join_join_timeout_and_interrupt() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let l = log();
    let sleeper = {
        let l = l.clone();
        g.spawn("sleeper", async move {
            match sleep(Duration::from_secs(10)).await {
                Err(FiberError::Interrupted) => push(&l, "interrupted"),
                other => push(&l, format!("unexpected {other:?}")),
            }
            // An interrupt delivered while running hits the next wait.
            yield_now().await;
            match sleep(MS).await {
                Err(FiberError::Interrupted) => push(&l, "interrupted-again"),
                other => push(&l, format!("unexpected {other:?}")),
            }
        })
        .unwrap()
    };
    {
        let (l, s) = (l.clone(), sleeper.clone());
        g.spawn("joiner", async move {
            push(
                &l,
                format!("join_timeout={:?}", s.join_timeout(MS * 5).await),
            );
            push(&l, format!("join={:?}", s.join().await));
            push(&l, format!("join_after={:?}", s.join().await));
        })
        .unwrap();
    }
    sim.run_for(MS * 6);
    assert_eq!(*l.borrow(), ["join_timeout=Ok(false)"]);
    assert!(sleeper.is_alive());
    assert!(sleeper.interrupt());
    sim.step();
    assert!(sleeper.interrupt()); // pending for the next wait
    sim.run_until_idle();
    assert_eq!(
        *l.borrow(),
        [
            "join_timeout=Ok(false)",
            "interrupted",
            "interrupted-again",
            "join=Ok(true)",
            "join_after=Ok(true)"
        ]
    );
    assert!(!sleeper.is_alive());
    assert!(!sleeper.interrupt());
}

#[test]
fn fairness_defers_extra_wakeups_to_next_round() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let (ping, pong) = (FiberCondition::new("ping"), FiberCondition::new("pong"));
    let count = Rc::new(Cell::new(0u32));
    {
        let (ping, pong, count) = (ping.clone(), pong.clone(), count.clone());
        g.spawn("a", async move {
            loop {
                pong.signal();
                if ping.wait().await.is_err() {
                    return;
                }
                count.set(count.get() + 1);
            }
        })
        .unwrap();
    }
    {
        let (ping, pong) = (ping.clone(), pong.clone());
        g.spawn("b", async move {
            loop {
                ping.signal();
                if pong.wait().await.is_err() {
                    return;
                }
            }
        })
        .unwrap();
    }
    // With a budget of 1 per round, the ping-pong advances a bounded amount per round
    // instead of spinning forever inside one round.
    sim.step();
    let after_one = count.get();
    assert!(after_one <= 2, "one round ran {after_one} exchanges");
    for _ in 0..10 {
        sim.step();
    }
    assert!(count.get() > after_one && count.get() <= 2 * 11);

    // With a budget of 5 per round, the same ping-pong runs about 5 exchanges per
    // round, and deferred wake-ups are not lost: the next rounds continue.
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let (ping, pong) = (FiberCondition::new("ping"), FiberCondition::new("pong"));
    let n = Rc::new(Cell::new(0u32));
    {
        let (ping, pong, n) = (ping.clone(), pong.clone(), n.clone());
        g.spawn_with(FiberOptions::new("a").max_ready_per_round(5), async move {
            loop {
                pong.signal();
                if ping.wait().await.is_err() {
                    return;
                }
                n.set(n.get() + 1);
            }
        })
        .unwrap();
    }
    g.spawn_with(
        FiberOptions::new("b").daemon().max_ready_per_round(5),
        async move {
            loop {
                ping.signal();
                if pong.wait().await.is_err() {
                    return;
                }
            }
        },
    )
    .unwrap();
    sim.step();
    let first = n.get();
    assert!(
        (3..=6).contains(&first),
        "first round ran {first} exchanges"
    );
    sim.step();
    let second = n.get() - first;
    assert!(
        (3..=6).contains(&second),
        "second round ran {second} exchanges"
    );
}

#[test]
fn panicking_fiber_fails_its_group_only() {
    let mut sim = Simulation::new(1);
    let bad = sim.new_group("bad");
    let good = sim.new_group("good");
    let l = log();
    {
        let l = l.clone();
        bad.spawn("victim", async move {
            let r = sleep_until_shutdown(Duration::from_secs(60)).await;
            push(&l, format!("victim saw shutdown: {r:?}"));
        })
        .unwrap();
    }
    bad.spawn("boom", async move {
        sleep(MS).await.unwrap();
        panic!("kaboom");
    })
    .unwrap();
    {
        let l = l.clone();
        good.spawn("ok", async move {
            sleep(MS * 5).await.unwrap();
            push(&l, "good still running");
        })
        .unwrap();
    }
    let h = bad.handle();
    sim.run_for(MS * 10);
    assert_eq!(
        *l.borrow(),
        ["victim saw shutdown: Ok(true)", "good still running"]
    );
    assert!(bad.is_finished());
    assert!(h.fatal_error().unwrap().contains("kaboom"));
    assert!(!good.is_finished());
    assert!(bad.spawn("late", async {}).is_err());
}

#[test]
fn a_panicking_fiber_is_ended_once_and_the_run_goes_on() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let l = log();
    struct OnDrop(Log);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            push(&self.0, "boom's locals dropped");
        }
    }
    {
        let l = l.clone();
        g.spawn("boom", async move {
            let _d = OnDrop(l);
            sleep(MS).await.unwrap();
            panic!("poll panics");
        })
        .unwrap();
    }
    // Fibers ready in the same round as the panicking one still run in that round.
    for k in 0..3 {
        let l = l.clone();
        g.spawn(format!("after-{k}"), async move {
            sleep(MS).await.unwrap();
            push(&l, format!("after-{k} ran"));
        })
        .unwrap();
    }
    let h = g.handle();
    sim.run_for(MS * 10);
    assert_eq!(
        *l.borrow(),
        [
            "boom's locals dropped",
            "after-0 ran",
            "after-1 ran",
            "after-2 ran"
        ]
    );
    assert!(h.fatal_error().unwrap().contains("poll panics"));
    assert!(g.is_finished());
    // The dispatcher thread (here: the simulation) keeps serving other groups.
    let g2 = sim.new_group("g2");
    let l2 = l.clone();
    g2.spawn("later", async move { push(&l2, "g2 ran") })
        .unwrap();
    sim.run_for(MS);
    assert_eq!(l.borrow().last().map(String::as_str), Some("g2 ran"));
}

#[test]
fn shutdown_waits_for_non_daemons_and_abandons_daemons() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let l = log();
    struct OnDrop(Log, &'static str);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            push(&self.0, format!("dropped {}", self.1));
        }
    }
    {
        let l = l.clone();
        g.spawn_with(FiberOptions::new("daemon").daemon(), async move {
            let _d = OnDrop(l.clone(), "daemon");
            let c = FiberCondition::new("never");
            let _ = c.wait().await;
            push(&l, "daemon resumed (wrong)");
        })
        .unwrap();
    }
    {
        let l = l.clone();
        g.spawn("worker", async move {
            // Ignores shutdown; keeps a pending timer.
            sleep(MS * 50).await.unwrap();
            push(&l, "worker done");
        })
        .unwrap();
    }
    {
        let l = l.clone();
        g.spawn_with(FiberOptions::new("daemon-sleeper").daemon(), async move {
            let _d = OnDrop(l.clone(), "daemon-sleeper");
            let _ = sleep(MS * 200).await;
            push(&l, "daemon-sleeper resumed (wrong)");
        })
        .unwrap();
    }
    let watcher = sim.new_group("watcher");
    {
        let (l, g) = (l.clone(), g.clone());
        watcher
            .spawn("w", async move {
                g.wait_finished().await.unwrap();
                push(&l, "watcher saw finish");
            })
            .unwrap();
    }
    sim.run_until_idle();
    g.request_shutdown();
    sim.run_until_idle();
    assert!(!g.is_finished(), "non-daemon still running");
    sim.run_for(MS * 60);
    assert!(g.is_finished());
    // The abandoned daemon's timer is still in the heap; firing it later is harmless.
    sim.run_for(MS * 300);
    let mut got = l.borrow().clone();
    got[1..3].sort();
    assert_eq!(
        got,
        [
            "worker done",
            "dropped daemon",
            "dropped daemon-sleeper",
            "watcher saw finish"
        ]
    );
}

#[test]
fn primitives_outside_fibers_report_not_in_fiber() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut s = Box::pin(sleep(MS));
    assert!(matches!(
        s.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Err(FiberError::NotInFiber))
    ));
    assert!(dt_fiber::now().is_none());
    assert!(dt_fiber::random_u64().is_none());
    let _ = &mut sim;
    let _ = g;
    use std::future::Future;
}

#[test]
fn fatal_shuts_the_group_down_and_names_it() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("raft-7");
    let h = g.handle();
    let l = log();
    {
        let (l, g2) = (l.clone(), g.clone());
        let f = g
            .spawn("applier", async move {
                sleep(MS).await.unwrap();
                let e = g2.fatal("apply failed at index 42");
                push(&l, e.to_string());
            })
            .unwrap();
        assert!(f.name() == "applier");
    }
    sim.run_for(MS * 2);
    assert!(g.is_finished());
    assert!(h.should_stop());
    assert_eq!(h.fatal_error().as_deref(), Some("apply failed at index 42"));
    assert!(l.borrow()[0].contains("raft-7"));
}

#[test]
fn future_of_finished_group_fails_waiters_instead_of_hanging() {
    let mut sim = Simulation::new(1);
    let owner = sim.new_group("owner");
    let other = sim.new_group("other");
    let pending: FiberFuture<u32> = owner.new_future();
    let done: FiberFuture<u32> = FiberFuture::completed(&owner, 7);
    let l = log();
    // A fiber of another group waits on a future its owner never completes.
    {
        let (f, l) = (pending.clone(), l.clone());
        other
            .spawn("waiter", async move {
                let r = f.get().await;
                push(&l, format!("waiter={r:?}"));
            })
            .unwrap();
    }
    // Another one waits with a timeout longer than it takes the owner to finish.
    {
        let (f, l) = (pending.clone(), l.clone());
        other
            .spawn("timed", async move {
                let r = f.get_timeout(MS * 1000).await;
                push(&l, format!("timed={r:?}"));
            })
            .unwrap();
    }
    sim.run_until_idle();
    assert!(
        l.borrow().is_empty(),
        "nobody completed it yet: {:?}",
        l.borrow()
    );
    owner.request_shutdown();
    sim.run_until_idle();
    assert!(owner.is_finished());
    let got = l.borrow().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    for line in &got {
        assert!(
            line.contains("GroupFinished") && line.contains("\"owner\""),
            "{line}"
        );
    }
    // Waits started after the owner finished fail at once; a value completed before
    // the owner finished stays readable.
    {
        let (f, d, l) = (pending.clone(), done.clone(), l.clone());
        other
            .spawn("late", async move {
                let r = f.take().await;
                push(
                    &l,
                    format!(
                        "late={}",
                        matches!(r, Err(FiberError::GroupFinished { .. }))
                    ),
                );
                push(&l, format!("done={:?}", d.get().await));
            })
            .unwrap();
    }
    sim.run_until_idle();
    let got = l.borrow().clone();
    assert_eq!(&got[2..], ["late=true", "done=Ok(7)"]);
    assert!(FiberError::GroupFinished {
        group: "owner".into()
    }
    .to_string()
    .contains("owner"));
}

#[test]
fn deferred_front_wakeups_run_first_next_round_with_a_whole_budget() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let c = FiberCondition::new("c");
    let l = log();
    // Started from a fiber, so that they start (and use their budget) in round 1.
    let (g2, c2, l2) = (g.clone(), c.clone(), l.clone());
    g.spawn("starter", async move {
        {
            let (c, l) = (c2.clone(), l2.clone());
            g2.spawn_with(FiberOptions::new("w").daemon(), async move {
                while c.wait().await.is_ok() {
                    push(&l, "w");
                }
            })
            .unwrap();
        }
        {
            let l = l2.clone();
            g2.spawn("y", async move {
                yield_now().await;
                push(&l, "y");
            })
            .unwrap();
        }
        let c = c2.clone();
        g2.spawn("s", async move {
            // Round 1: "w" already used its budget (it started this round): deferred.
            c.signal();
            yield_now().await;
            // Round 2: the deferred wake-up did not use round 2's budget.
            c.signal();
        })
        .unwrap();
    })
    .unwrap();
    sim.step();
    assert!(l.borrow().is_empty(), "{:?}", l.borrow());
    sim.step();
    // The deferred signalled fiber runs before the yielded one, and is woken again
    // (and runs) in the same round.
    assert_eq!(*l.borrow(), ["w", "y", "w"]);
}

/// Polls two futures side by side in one fiber until both are done.
struct Both<A: std::future::Future, B: std::future::Future> {
    a: std::pin::Pin<Box<A>>,
    b: std::pin::Pin<Box<B>>,
    ra: Option<A::Output>,
    rb: Option<B::Output>,
}

impl<A: std::future::Future, B: std::future::Future> std::future::Future for Both<A, B>
where
    A::Output: Unpin,
    B::Output: Unpin,
{
    type Output = (A::Output, B::Output);
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        if this.ra.is_none() {
            if let std::task::Poll::Ready(v) = this.a.as_mut().poll(cx) {
                this.ra = Some(v);
            }
        }
        if this.rb.is_none() {
            if let std::task::Poll::Ready(v) = this.b.as_mut().poll(cx) {
                this.rb = Some(v);
            }
        }
        match (this.ra.take(), this.rb.take()) {
            (Some(a), Some(b)) => std::task::Poll::Ready((a, b)),
            (a, b) => {
                this.ra = a;
                this.rb = b;
                std::task::Poll::Pending
            }
        }
    }
}

#[test]
fn one_fiber_waits_on_two_channels_at_once_and_again_after() {
    let mut sim = Simulation::new(1);
    let g = sim.new_group("g");
    let (c1, c2) = (g.new_channel::<u32>(), g.new_channel::<u32>());
    let l = log();
    {
        let (c1, c2, l) = (c1.clone(), c2.clone(), l.clone());
        g.spawn("taker", async move {
            for round in 0..3 {
                let both = Both {
                    a: Box::pin(c1.take()),
                    b: Box::pin(c2.take()),
                    ra: None,
                    rb: None,
                };
                let (a, b) = both.await;
                push(&l, format!("round {round}: {} {}", a.unwrap(), b.unwrap()));
            }
        })
        .unwrap();
    }
    {
        let (c1, c2) = (c1.clone(), c2.clone());
        g.spawn("offerer", async move {
            for k in 0..3u32 {
                sleep(MS).await.unwrap();
                c2.offer(20 + k);
                sleep(MS).await.unwrap();
                c1.offer(10 + k);
            }
        })
        .unwrap();
    }
    sim.run_for(MS * 20);
    assert_eq!(
        *l.borrow(),
        ["round 0: 10 20", "round 1: 11 21", "round 2: 12 22"]
    );
    assert_eq!(g.fiber_count(), 0);
}
