//! Cross-thread stress: many threads firing into groups, repeated; nothing lost, no
//! deadlock, clean shutdown every time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use dt_fiber::{Dispatcher, DispatcherConfig, FiberFuture};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn repeated_cross_thread_storms_lose_nothing() {
    const ITERATIONS: usize = 50;
    const THREADS: u64 = 4;
    const OFFERS: u64 = 2_000;
    const COMPLETIONS: u64 = 200;
    let start = Instant::now();
    for it in 0..ITERATIONS {
        let d = Dispatcher::start(DispatcherConfig::new(format!("stress-{it}"))).unwrap();
        let groups: Vec<_> = (0..2)
            .map(|i| d.start_group(&format!("g{i}")).unwrap())
            .collect();
        let sum = Arc::new(AtomicU64::new(0));
        let completed = Arc::new(AtomicU64::new(0));
        // Each group: a channel consumer, and a fiber awaiting futures completed by
        // other threads. The completers are shipped out to the storm threads.
        let mut senders = Vec::new();
        let mut completers = Vec::new();
        for g in &groups {
            let (tx, rx) = mpsc::channel();
            let (sum, completed) = (sum.clone(), completed.clone());
            g.execute(move |grp| {
                let ch = grp.new_channel::<u64>();
                let futs: Vec<FiberFuture<u64>> = (0..THREADS * COMPLETIONS)
                    .map(|_| grp.new_future())
                    .collect();
                let comps: Vec<_> = futs.iter().map(|f| f.completer().unwrap()).collect();
                tx.send((ch.sender(), comps)).unwrap();
                let s2 = sum.clone();
                grp.spawn("consumer", async move {
                    let mut buf = Vec::new();
                    while let Ok(n) = ch.take_all(&mut buf, None, true).await {
                        if n == 0 {
                            break;
                        }
                        s2.fetch_add(buf.drain(..).sum::<u64>(), Ordering::Relaxed);
                    }
                })
                .unwrap();
                grp.spawn("awaiter", async move {
                    for f in futs {
                        let v = f.await.unwrap();
                        completed.fetch_add(v, Ordering::Relaxed);
                    }
                })
                .unwrap();
            })
            .unwrap();
            let (s, c) = rx.recv_timeout(WAIT).unwrap();
            senders.push(s);
            completers.push(c);
        }
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let mut per_thread: Vec<Vec<_>> = (0..THREADS).map(|_| Vec::new()).collect();
        for comps in completers {
            for (i, c) in comps.into_iter().enumerate() {
                per_thread[i % THREADS as usize].push(c);
            }
        }
        let threads: Vec<_> = per_thread
            .into_iter()
            .map(|comps| {
                let (senders, b) = (senders.clone(), barrier.clone());
                let gs = groups.clone();
                std::thread::spawn(move || {
                    b.wait();
                    let mut comps = comps.into_iter();
                    for i in 1..=OFFERS {
                        for s in &senders {
                            s.offer(i).unwrap();
                        }
                        if i % 10 == 0 {
                            if let Some(c) = comps.next() {
                                c.complete(1).unwrap();
                            }
                        }
                        if i % 500 == 0 {
                            for g in &gs {
                                g.fire_fiber("blip", || async {}).unwrap();
                            }
                        }
                    }
                    for c in comps {
                        c.complete(1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let expected_sum = 2 * THREADS * OFFERS * (OFFERS + 1) / 2;
        let expected_completed = 2 * THREADS * COMPLETIONS;
        let deadline = Instant::now() + WAIT;
        while (sum.load(Ordering::Relaxed) != expected_sum
            || completed.load(Ordering::Relaxed) != expected_completed)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sum.load(Ordering::Relaxed), expected_sum, "iteration {it}");
        assert_eq!(completed.load(Ordering::Relaxed), expected_completed);
        let report = d.stop(WAIT);
        assert!(report.stopped, "iteration {it}: {report:?}");
        for g in &groups {
            assert!(g.is_finished());
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}
