//! [`ThreadPoolIo`]: a plain std-thread [`Executor`] for the log's file work, for tests,
//! tools and embedders without dt-fiber (whose `IoPool` is the normal choice).
//!
//! An idle thread sleeps on a condition variable at once: it does not spin or yield
//! first (a channel's receive does, a few `sched_yield`s per miss). Only a thread whose
//! last sleep was short (a busy pool) yields a few times before sleeping again. The pool's jobs are
//! file writes and fsyncs of hundreds of microseconds, so a spin saves nothing, while
//! with many groups every job's thread went idle after it and the yields were a large
//! share of an idle server's context switches. A submitter wakes a thread only when
//! none is already woken for the jobs queued (one futex wake per job at most, none when
//! all threads are busy: they take the queued jobs as they finish).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use dt_common::{Executor, Task};

/// A sleep shorter than this marks the pool busy (see [`Shared::work`]).
const HOT_SLEEP: std::time::Duration = std::time::Duration::from_micros(500);
/// Yields a busy thread makes before sleeping.
const HOT_YIELDS: usize = 4;

#[derive(Default)]
struct State {
    jobs: VecDeque<Task>,
    /// Threads waiting on the condition variable.
    sleeping: usize,
    /// Wake-ups sent and not yet taken by a thread.
    woken: usize,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock: the queue stays consistent even if one panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(&self) {
        // Whether this thread's last sleep was short: the pool is busy, and the next
        // job is likely to come within a few yields.
        let mut hot = false;
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                // A job that panics must not take the thread (and its queue share) down.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                st = self.lock();
                continue;
            }
            if st.closed {
                return;
            }
            if hot {
                // Under load a woken thread may wait for a CPU longer than the job
                // takes; a thread that stays runnable a little picks the next job up
                // without that wait. Only while hot: idle threads sleep at once.
                hot = false;
                drop(st);
                for _ in 0..HOT_YIELDS {
                    std::thread::yield_now();
                    if !self.lock().jobs.is_empty() {
                        break;
                    }
                }
                st = self.lock();
                continue;
            }
            st.sleeping += 1;
            let slept = std::time::Instant::now();
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
            st.sleeping -= 1;
            st.woken = st.woken.saturating_sub(1);
            hot = slept.elapsed() < HOT_SLEEP;
        }
    }
}

/// A fixed pool of std threads fed by a queue.
pub struct ThreadPoolIo {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ThreadPoolIo {
    /// Starts `n` (at least 1) threads named `dt-io-<k>`.
    pub fn new(n: usize) -> Arc<ThreadPoolIo> {
        let shared = Arc::new(Shared::default());
        let threads = (0..n.max(1))
            .map(|k| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("dt-io-{k}"))
                    .spawn(move || shared.work())
                    .expect("spawn IO thread")
            })
            .collect();
        Arc::new(ThreadPoolIo { shared, threads })
    }
}

impl Executor for ThreadPoolIo {
    fn execute(&self, task: Task) -> Result<(), Task> {
        let wake = {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(task);
            }
            st.jobs.push_back(task);
            // Threads already woken take queued jobs in turn; wake another only while
            // the queue holds more jobs than wake-ups in flight and someone sleeps.
            let wake = st.sleeping > st.woken && st.jobs.len() > st.woken;
            if wake {
                st.woken += 1;
            }
            wake
        };
        if wake {
            self.shared.cond.notify_one();
        }
        Ok(())
    }
}

impl Drop for ThreadPoolIo {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.cond.notify_all();
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            // The last Arc may be dropped by a job on one of our own threads.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn runs_every_job_and_drains_on_drop() {
        let pool = ThreadPoolIo::new(3);
        let n = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            let n = n.clone();
            assert!(pool
                .execute(Box::new(move || {
                    n.fetch_add(1, Ordering::Relaxed);
                }))
                .is_ok());
        }
        drop(pool);
        assert_eq!(n.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn jobs_run_in_parallel() {
        // Four jobs that each wait for all four to have started finish only if four
        // threads run them at once.
        let pool = ThreadPoolIo::new(4);
        let started = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        for _ in 0..4 {
            let (started, tx) = (started.clone(), tx.clone());
            let _ = pool.execute(Box::new(move || {
                started.fetch_add(1, Ordering::SeqCst);
                let end = std::time::Instant::now() + Duration::from_secs(10);
                while started.load(Ordering::SeqCst) < 4 && std::time::Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let _ = tx.send(started.load(Ordering::SeqCst));
            }));
        }
        for _ in 0..4 {
            assert_eq!(rx.recv_timeout(Duration::from_secs(20)), Ok(4));
        }
    }

    #[test]
    fn a_panicking_job_leaves_the_thread_working() {
        let pool = ThreadPoolIo::new(1);
        let _ = pool.execute(Box::new(|| panic!("job panics on purpose")));
        let (tx, rx) = mpsc::channel();
        let _ = pool.execute(Box::new(move || {
            let _ = tx.send(7);
        }));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(7));
    }

    #[test]
    fn jobs_submitted_after_sleep_are_run() {
        // Threads asleep (nothing queued for a while) still wake for each new job.
        let pool = ThreadPoolIo::new(2);
        for round in 0..20 {
            std::thread::sleep(Duration::from_millis(2));
            let (tx, rx) = mpsc::channel();
            for k in 0..3 {
                let tx = tx.clone();
                let _ = pool.execute(Box::new(move || {
                    let _ = tx.send(round * 10 + k);
                }));
            }
            let mut got: Vec<i32> = (0..3)
                .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("job ran"))
                .collect();
            got.sort();
            assert_eq!(got, vec![round * 10, round * 10 + 1, round * 10 + 2]);
        }
    }
}
