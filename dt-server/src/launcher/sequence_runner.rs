//! [`SequenceRunner`]: runs one re-runnable task on its own thread, never two runs at
//! once, many requests coalesced into one run, failed runs retried after growing
//! delays; a request may wait for the outcome of a run that started after it (the
//! reference's `SequenceRunner` behind the servers.properties sync).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a waiting request is told: `Ok` once a run that started after it succeeded,
/// `Err(reason)` when none did before its deadline (or the runner stopped).
pub type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The delays before retrying a failed run of the servers.properties sync: 1 s, 10 s,
/// 30 s, then every 60 s.
pub const SYNC_RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

struct Waiter {
    target: u64,
    deadline: Instant,
    reply: Reply,
}

#[derive(Default)]
struct State {
    requested: u64,
    finished: u64,
    fail_count: usize,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    waiters: Vec<Waiter>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A serialized, coalescing, retrying runner of one task (see the module docs).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::{mpsc, Arc};
/// use std::time::Duration;
/// use dt_server::launcher::SequenceRunner;
///
/// let runs = Arc::new(AtomicUsize::new(0));
/// let r = runs.clone();
/// let runner = SequenceRunner::start("demo", move || {
///     r.fetch_add(1, Ordering::SeqCst);
///     Ok(())
/// }, vec![Duration::from_millis(10)]).unwrap();
/// let (tx, rx) = mpsc::channel();
/// runner.submit_with_reply(Duration::from_secs(5), Box::new(move |r| tx.send(r).unwrap()));
/// assert_eq!(rx.recv().unwrap(), Ok(()));
/// assert!(runs.load(Ordering::SeqCst) >= 1);
/// runner.stop();
/// ```
pub struct SequenceRunner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SequenceRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        write!(
            f,
            "SequenceRunner(requested {}, finished {})",
            s.requested, s.finished
        )
    }
}

impl SequenceRunner {
    /// Starts the runner's thread (named `name`). `task` is re-runnable; after its
    /// n-th consecutive failure the next run waits `retry[n]` (the last delay repeats;
    /// an empty list retries at once).
    pub fn start(
        name: &str,
        mut task: impl FnMut() -> Result<(), String> + Send + 'static,
        retry: Vec<Duration>,
    ) -> std::io::Result<SequenceRunner> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let sh = shared.clone();
        let th = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run_loop(&sh, &mut task, &retry))?;
        Ok(SequenceRunner {
            shared,
            thread: Mutex::new(Some(th)),
        })
    }

    /// Asks for a run; returns at once (never waits for the task).
    pub fn submit(&self) -> u64 {
        let mut s = self.shared.lock();
        s.requested += 1;
        let v = s.requested;
        drop(s);
        self.shared.cond.notify_all();
        v
    }

    /// Asks for a run and calls `reply` (on the runner's thread) with `Ok` once a run
    /// that started after this call succeeded, or with the reason when none did
    /// within `timeout`. Returns at once.
    pub fn submit_with_reply(&self, timeout: Duration, reply: Reply) {
        let mut s = self.shared.lock();
        if s.stop {
            drop(s);
            reply(Err("the server is stopping".into()));
            return;
        }
        s.requested += 1;
        let target = s.requested;
        s.waiters.push(Waiter {
            target,
            deadline: Instant::now() + timeout,
            reply,
        });
        drop(s);
        self.shared.cond.notify_all();
    }

    /// The request number the last successful run covered.
    pub fn finished(&self) -> u64 {
        self.shared.lock().finished
    }

    /// The reason of the last failed run, until a run succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Stops the thread after the run in progress (waiting requests are told the
    /// server is stopping).
    pub fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.cond.notify_all();
        let th = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(th) = th {
            let _ = th.join();
        }
    }
}

impl Drop for SequenceRunner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(list: Vec<(Reply, Result<(), String>)>) {
    for (reply, r) in list {
        reply(r);
    }
}

fn run_loop(sh: &Shared, task: &mut impl FnMut() -> Result<(), String>, retry: &[Duration]) {
    let mut s = sh.lock();
    loop {
        if s.stop {
            let out = s
                .waiters
                .drain(..)
                .map(|w| (w.reply, Err("the server is stopping".to_string())))
                .collect();
            drop(s);
            answer(out);
            return;
        }
        let now = Instant::now();
        if s.waiters.iter().any(|w| w.deadline <= now) {
            let why = match &s.last_error {
                Some(e) => format!("no sync run succeeded within the request timeout: {e}"),
                None => "no sync run finished within the request timeout".to_string(),
            };
            let (late, keep): (Vec<Waiter>, Vec<Waiter>) =
                s.waiters.drain(..).partition(|w| w.deadline <= now);
            s.waiters = keep;
            drop(s);
            answer(
                late.into_iter()
                    .map(|w| (w.reply, Err(why.clone())))
                    .collect(),
            );
            s = sh.lock();
            continue;
        }
        let pending = s.requested > s.finished;
        if pending && s.retry_at.is_none_or(|t| t <= now) {
            let version = s.requested;
            drop(s);
            let r = task();
            s = sh.lock();
            match r {
                Ok(()) => {
                    s.finished = s.finished.max(version);
                    s.fail_count = 0;
                    s.retry_at = None;
                    s.last_error = None;
                    let (done, keep): (Vec<Waiter>, Vec<Waiter>) =
                        s.waiters.drain(..).partition(|w| w.target <= version);
                    s.waiters = keep;
                    drop(s);
                    answer(done.into_iter().map(|w| (w.reply, Ok(()))).collect());
                    s = sh.lock();
                }
                Err(e) => {
                    let delay = retry
                        .get(s.fail_count.min(retry.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or_default();
                    log::error!("{e} (retrying in {delay:?})");
                    s.fail_count += 1;
                    s.retry_at = Some(Instant::now() + delay);
                    s.last_error = Some(e);
                }
            }
            continue;
        }
        let mut wake = s.waiters.iter().map(|w| w.deadline).min();
        if pending {
            if let Some(t) = s.retry_at {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        s = match wake {
            Some(t) => {
                let d = t.saturating_duration_since(Instant::now());
                sh.cond
                    .wait_timeout(s, d)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
            None => sh.cond.wait(s).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn coalesces_serializes_and_answers_after_a_later_run() {
        let runs = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new(AtomicUsize::new(0));
        let (r, b) = (runs.clone(), busy.clone());
        let runner = SequenceRunner::start(
            "t",
            move || {
                assert_eq!(b.fetch_add(1, Ordering::SeqCst), 0, "two runs at once");
                std::thread::sleep(Duration::from_millis(20));
                r.fetch_add(1, Ordering::SeqCst);
                b.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
            vec![],
        )
        .unwrap();
        for _ in 0..50 {
            runner.submit();
        }
        let (tx, rx) = mpsc::channel();
        runner.submit_with_reply(
            Duration::from_secs(10),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        assert_eq!(rx.recv().unwrap(), Ok(()));
        let n = runs.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&n),
            "51 requests coalesce into a few runs: {n}"
        );
        assert_eq!(runner.finished(), 51);
        runner.stop();
    }

    #[test]
    fn failures_retry_after_the_delays_and_time_out_with_the_reason() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let runner = SequenceRunner::start(
            "t",
            move || {
                let n = r.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(format!("disk full {n}"))
                } else {
                    Ok(())
                }
            },
            vec![Duration::from_millis(50), Duration::from_millis(300)],
        )
        .unwrap();
        // The first run fails at once, the retry comes after 50 ms and fails too; a
        // request with a 150 ms timeout gets the reason.
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        let tx2 = tx.clone();
        runner.submit_with_reply(
            Duration::from_millis(150),
            Box::new(move |r| tx2.send(r).unwrap()),
        );
        let r = rx.recv().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(140));
        let e = r.unwrap_err();
        assert!(e.contains("disk full 1"), "{e}");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // The third run (after 300 ms) succeeds and answers a waiting request.
        runner.submit_with_reply(
            Duration::from_secs(5),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        assert_eq!(rx.recv().unwrap(), Ok(()));
        assert!(t0.elapsed() >= Duration::from_millis(340));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(runner.last_error().is_none());
        runner.stop();
    }

    #[test]
    fn stop_answers_the_waiting_requests() {
        let runner =
            SequenceRunner::start("t", || Err("no".into()), vec![Duration::from_secs(60)]).unwrap();
        let (tx, rx) = mpsc::channel();
        runner.submit_with_reply(
            Duration::from_secs(60),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        std::thread::sleep(Duration::from_millis(20));
        runner.stop();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err("the server is stopping".to_string())
        );
    }
}
