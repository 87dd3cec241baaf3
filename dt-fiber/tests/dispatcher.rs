//! The Dispatcher on its own thread: lifecycle, cross-thread work, stress, IO pool, perf.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use dt_common::{PerfCallback, PerfType};
use dt_fiber::{
    sleep, ClockMode, Dispatcher, DispatcherConfig, FiberCondition, FiberError, FiberOptions,
    IoPool, Published,
};

const WAIT: Duration = Duration::from_secs(10);

fn start(name: &str) -> Dispatcher {
    Dispatcher::start(DispatcherConfig::new(name)).unwrap()
}

#[test]
fn fire_fiber_from_other_thread_and_stop() {
    let d = start("d1");
    let g = d.start_group("g1").unwrap();
    let (tx, rx) = mpsc::channel();
    g.fire_fiber("f", move || async move {
        sleep(Duration::from_millis(1)).await.unwrap();
        tx.send(dt_fiber::current_group().unwrap().name().to_string())
            .unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "g1");
    let report = d.stop(WAIT);
    assert!(report.stopped, "{report:?}");
    assert!(g.is_finished());
    assert!(d.is_stopped());
    // Everything is rejected after stop.
    assert!(matches!(
        g.execute(|_| {}),
        Err(FiberError::GroupFinished { .. })
    ));
    assert!(matches!(
        d.start_group("late"),
        Err(FiberError::DispatcherStopped { .. })
    ));
}

#[test]
fn stop_reports_groups_that_do_not_finish_in_time() {
    let d = start("d2");
    let stubborn = d.start_group("stubborn").unwrap();
    let polite = d.start_group("polite").unwrap();
    stubborn
        .fire_fiber("ignores-shutdown", || async {
            sleep(Duration::from_millis(400)).await.unwrap();
        })
        .unwrap();
    polite
        .fire_fiber("listens", || async {
            let _ = dt_fiber::sleep_until_shutdown(Duration::from_secs(60)).await;
        })
        .unwrap();
    // Let the fibers start.
    let (tx, rx) = mpsc::channel();
    stubborn.execute(move |_| tx.send(()).unwrap()).unwrap();
    rx.recv_timeout(WAIT).unwrap();
    let report = d.stop(Duration::from_millis(50));
    assert!(!report.stopped);
    assert_eq!(report.unfinished_groups, vec!["stubborn".to_string()]);
    assert!(polite.wait_finished(WAIT));
    // The dispatcher finishes the stubborn group in the background.
    assert!(stubborn.wait_finished(WAIT));
    assert!(d.stop(WAIT).stopped);
}

#[test]
fn panic_in_one_group_does_not_stop_other_groups() {
    let d = start("d3");
    let bad = d.start_group("bad").unwrap();
    let good = d.start_group("good").unwrap();
    bad.fire_fiber("boom", || async { panic!("fiber exploded") })
        .unwrap();
    assert!(bad.wait_finished(WAIT));
    assert!(bad.fatal_error().unwrap().contains("fiber exploded"));
    // A panicking task is contained too.
    let (tx, rx) = mpsc::channel();
    good.fire_fiber("fine", move || async move {
        sleep(Duration::from_millis(1)).await.unwrap();
        tx.send(42).unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 42);
    assert!(!good.is_finished());
    let g3 = d.start_group("task-panics").unwrap();
    g3.execute(|_| panic!("task exploded")).unwrap();
    assert!(g3.wait_finished(WAIT));
    assert!(d.stop(WAIT).stopped);
}

#[test]
fn many_threads_fire_into_one_group_nothing_lost() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 20_000;
    let d = start("d4");
    let g = d.start_group("sink").unwrap();
    let total = Arc::new(AtomicU64::new(0));
    let fibers_run = Arc::new(AtomicU64::new(0));
    let (stx, srx) = mpsc::channel();
    {
        let total = total.clone();
        g.execute(move |g| {
            let ch = g.new_channel::<u64>();
            stx.send(ch.sender()).unwrap();
            g.spawn("consumer", async move {
                let mut buf = Vec::new();
                while let Ok(n) = ch.take_all(&mut buf, None, true).await {
                    if n == 0 {
                        break;
                    }
                    let s: u64 = buf.drain(..).sum();
                    total.fetch_add(s, Ordering::Relaxed);
                }
            })
            .unwrap();
        })
        .unwrap();
    }
    let sender = srx.recv_timeout(WAIT).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, g, b, fr) = (
                sender.clone(),
                g.clone(),
                barrier.clone(),
                fibers_run.clone(),
            );
            std::thread::spawn(move || {
                b.wait();
                for i in 1..=PER_THREAD {
                    s.offer(i).unwrap();
                    if i % 100 == 0 {
                        let fr = fr.clone();
                        g.fire_fiber(format!("t{t}-{i}"), move || async move {
                            fr.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let expected = THREADS * PER_THREAD * (PER_THREAD + 1) / 2;
    let deadline = Instant::now() + WAIT;
    while total.load(Ordering::Relaxed) != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(total.load(Ordering::Relaxed), expected);
    g.request_shutdown().unwrap();
    assert!(g.wait_finished(WAIT));
    assert_eq!(
        fibers_run.load(Ordering::Relaxed),
        THREADS * PER_THREAD / 100
    );
    assert!(d.stop(WAIT).stopped);
}

#[test]
fn io_pool_runs_blocking_work_and_contains_panics() {
    let d = start("d5");
    let pool = IoPool::new("io", 2).unwrap();
    assert!(matches!(
        IoPool::new("x", 0),
        Err(FiberError::InvalidConfig {
            field: "IoPool threads",
            ..
        })
    ));
    let g = d.start_group("store").unwrap();
    let (tx, rx) = mpsc::channel();
    let p2 = pool.clone();
    g.fire_fiber("writer", move || async move {
        let dir = std::env::temp_dir().join(format!("dt-fiber-io-{}", std::process::id()));
        let path = dir.join("f.bin");
        let r = p2
            .submit(move || -> std::io::Result<u64> {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&path, b"hello")?;
                let f = std::fs::File::open(&path)?;
                f.sync_all()?;
                let n = f.metadata()?.len();
                std::fs::remove_dir_all(&dir)?;
                Ok(n)
            })
            .unwrap()
            .await
            .unwrap();
        let p = p2
            .submit(|| -> u32 { panic!("disk on fire") })
            .unwrap()
            .await;
        let thread_ok = p2.submit(|| 5u32).unwrap().await;
        tx.send((r.unwrap(), p, thread_ok)).unwrap();
    })
    .unwrap();
    let (n, p, ok) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(n, 5);
    assert!(matches!(p, Err(FiberError::Panicked { .. })));
    assert_eq!(ok.unwrap(), 5);
    assert!(d.stop(WAIT).stopped);
    pool.shutdown();
    // A shut-down pool fails new work instead of hanging.
    let mut sim = dt_fiber::Simulation::new(1);
    let sg = sim.new_group("s");
    assert!(pool.submit_in(&sg, || 1).is_done());
    assert!(matches!(pool.submit(|| 1), Err(FiberError::NotInFiber)));
}

#[derive(Default)]
struct CountingPerf {
    runs: AtomicU64,
    work: AtomicU64,
    queue: AtomicU64,
}

impl PerfCallback for CountingPerf {
    fn accept(&self, t: PerfType) -> bool {
        matches!(
            t,
            PerfType::FiberRun | PerfType::FiberWork | PerfType::FiberQueue
        )
    }
    fn fire_time(&self, t: PerfType, _nanos: u64, count: u64, _bytes: u64) {
        let c = match t {
            PerfType::FiberRun => &self.runs,
            PerfType::FiberWork => &self.work,
            _ => &self.queue,
        };
        c.fetch_add(count, Ordering::Relaxed);
    }
}

#[test]
fn perf_callback_sees_runs_rounds_and_queue_waits() {
    let perf = Arc::new(CountingPerf::default());
    let mut cfg = DispatcherConfig::new("d6");
    cfg.perf = perf.clone();
    let d = Dispatcher::start(cfg).unwrap();
    let g = d.start_group("g").unwrap();
    let (tx, rx) = mpsc::channel();
    g.fire_fiber("f", move || async move {
        dt_fiber::yield_now().await;
        tx.send(()).unwrap();
    })
    .unwrap();
    rx.recv_timeout(WAIT).unwrap();
    assert!(d.stop(WAIT).stopped);
    assert!(perf.runs.load(Ordering::Relaxed) >= 2);
    assert!(perf.work.load(Ordering::Relaxed) >= 2);
    assert!(perf.queue.load(Ordering::Relaxed) >= 1);
}

#[test]
fn virtual_clock_on_a_real_dispatcher_skips_idle_time() {
    let mut cfg = DispatcherConfig::new("d7");
    cfg.clock = ClockMode::Virtual {
        start_wall_millis: 0,
    };
    cfg.seed = Some(3);
    let d = Dispatcher::start(cfg).unwrap();
    let g = d.start_group("g").unwrap();
    let (tx, rx) = mpsc::channel();
    let real_start = Instant::now();
    g.fire_fiber("long-sleeper", move || async move {
        let t0 = dt_fiber::now().unwrap();
        sleep(Duration::from_secs(24 * 3600)).await.unwrap();
        let t1 = dt_fiber::now().unwrap();
        tx.send(t1.nano_time - t0.nano_time).unwrap();
    })
    .unwrap();
    let elapsed = rx.recv_timeout(WAIT).unwrap();
    assert!(elapsed >= 24 * 3600 * 1_000_000_000);
    assert!(real_start.elapsed() < WAIT);
    assert!(d.stop(WAIT).stopped);
}

#[test]
fn execute_schedule_and_published_status() {
    let d = start("d8");
    let g = d.start_group("g").unwrap();
    let status = Published::new(("follower", 0u64));
    let (tx, rx) = mpsc::channel();
    let s2 = status.clone();
    g.execute(move |grp| {
        let cond = FiberCondition::new("elected");
        let c2 = cond.clone();
        grp.spawn_with(FiberOptions::new("elector").daemon(), async move {
            let _ = c2.wait().await;
            s2.publish(("leader", 7));
        })
        .unwrap();
        grp.spawn("trigger", async move {
            cond.signal();
        })
        .unwrap();
    })
    .unwrap();
    let tx2 = tx.clone();
    g.schedule(Duration::from_millis(5), move |grp| {
        tx2.send(grp.name().to_string()).unwrap()
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "g");
    let deadline = Instant::now() + WAIT;
    while status.load().0 != "leader" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(*status.load(), ("leader", 7));
    assert!(!g.should_stop());
    g.request_shutdown().unwrap();
    assert!(g.should_stop());
    assert!(g.wait_finished(WAIT));
    assert!(d.stop(WAIT).stopped);
}

/// A future that is not a dt-fiber primitive: it wakes through the std `Waker`, either
/// at once during the poll (`wake_by_ref` on the borrowed waker) or later from another
/// thread with a cloned (owned) waker.
struct Foreign {
    polls: u32,
    from_thread: bool,
}

impl std::future::Future for Foreign {
    type Output = u32;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u32> {
        self.polls += 1;
        if self.polls >= 3 {
            return std::task::Poll::Ready(self.polls);
        }
        if self.from_thread {
            let w = cx.waker().clone();
            let w2 = w.clone();
            drop(w2);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1));
                w.wake();
            });
        } else {
            cx.waker().wake_by_ref();
        }
        std::task::Poll::Pending
    }
}

#[test]
fn foreign_futures_are_woken_through_the_std_waker() {
    let d = start("d9");
    let g = d.start_group("g").unwrap();
    let (tx, rx) = mpsc::channel();
    for from_thread in [false, true] {
        let tx = tx.clone();
        g.fire_fiber("foreign", move || async move {
            let n = Foreign {
                polls: 0,
                from_thread,
            }
            .await;
            tx.send((from_thread, n)).unwrap();
        })
        .unwrap();
    }
    let mut got = vec![
        rx.recv_timeout(WAIT).unwrap(),
        rx.recv_timeout(WAIT).unwrap(),
    ];
    got.sort();
    assert_eq!(got, vec![(false, 3), (true, 3)]);
    assert!(d.stop(WAIT).stopped);
}

/// A fiber that keeps its std waker on every poll gets the same owned waker each time
/// (one allocation for the fiber, not one per poll: `will_wake` holds), and a fiber
/// woken through it by another fiber of its group (on the dispatcher's thread) runs.
#[test]
fn a_kept_waker_is_reused_and_wakes_a_fiber_of_the_same_group() {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::task::{Poll, Waker};
    let d = start("d9b");
    let g = d.start_group("g").unwrap();
    let (tx, rx) = mpsc::channel();
    g.execute(move |grp| {
        let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let wakes = Rc::new(Cell::new(0u32));
        let (s1, w1) = (slot.clone(), wakes.clone());
        grp.spawn("waiter", async move {
            let mut first: Option<Waker> = None;
            let mut same = 0;
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                if w1.get() >= 3 {
                    return Poll::Ready(());
                }
                let w = cx.waker().clone();
                match &first {
                    Some(f) if f.will_wake(&w) => same += 1,
                    Some(_) => {}
                    None => first = Some(w.clone()),
                }
                *s1.borrow_mut() = Some(w);
                Poll::Pending
            })
            .await;
            tx.send((polls, same)).unwrap();
        })
        .unwrap();
        grp.spawn("waker", async move {
            while wakes.get() < 3 {
                if let Some(w) = slot.borrow_mut().take() {
                    wakes.set(wakes.get() + 1);
                    w.wake();
                }
                dt_fiber::yield_now().await;
            }
        })
        .unwrap();
    })
    .unwrap();
    // polled 4 times (first, then after each of 3 wakes); the 2nd and 3rd kept the
    // waker kept at the 1st
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), (4, 2));
    assert!(d.stop(WAIT).stopped);
}

#[test]
fn stop_with_pending_timers_and_waiters_is_prompt() {
    let d = start("d10");
    let g = d.start_group("g").unwrap();
    let (tx, rx) = mpsc::channel();
    g.execute(move |grp| {
        // A daemon with a long timer: abandoned at finish.
        grp.spawn_with(FiberOptions::new("daemon-sleeper").daemon(), async {
            let _ = sleep(Duration::from_secs(3600)).await;
        })
        .unwrap();
        // A daemon waiting on a condition nobody signals.
        let cond = FiberCondition::new("never");
        grp.spawn_with(FiberOptions::new("daemon-waiter").daemon(), async move {
            let _ = cond.wait_timeout(Duration::from_secs(3600)).await;
        })
        .unwrap();
        // A non-daemon that returns when the group is asked to stop.
        let ch = grp.new_channel::<u32>();
        let tx2 = tx.clone();
        grp.spawn("taker", async move {
            let r = ch.take_or_stop(Some(Duration::from_secs(3600))).await;
            tx2.send(format!("{r:?}")).unwrap();
        })
        .unwrap();
        tx.send("started".to_string()).unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "started");
    let t0 = Instant::now();
    let report = d.stop(WAIT);
    assert!(report.stopped, "{report:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "Ok(None)");
    assert!(g.is_finished());
    assert!(g.fatal_error().is_none());
}

/// An idle dispatcher parks for up to a second; every message must wake it at once. Work
/// posted from several threads, each time just as the dispatcher may be going to park
/// (after the previous task ran), is all done quickly: a lost wake-up would cost the
/// whole park.
#[test]
fn an_idle_dispatcher_wakes_for_every_message_without_waiting_for_its_park() {
    let d = start("park");
    let g = Arc::new(d.start_group("g").unwrap());
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                for i in 0..300u32 {
                    let (tx, rx) = mpsc::channel();
                    let t0 = Instant::now();
                    g.execute(move |_| {
                        let _ = tx.send(());
                    })
                    .unwrap();
                    rx.recv_timeout(WAIT).unwrap();
                    slowest = slowest.max(t0.elapsed());
                    if (i + t) % 7 == 0 {
                        // let the dispatcher run out of work and park
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                slowest
            })
        })
        .collect();
    let slowest = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap();
    // the park is a second long; a woken dispatcher answers within milliseconds even on
    // a loaded machine
    assert!(
        slowest < Duration::from_millis(500),
        "slowest task: {slowest:?}"
    );
    assert!(d.stop(WAIT).stopped);
}
