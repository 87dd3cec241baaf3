//! [`Timer`]: one thread that runs closures at given instants (waits for a flow-control
//! permit that end at a deadline, watch keep-alives, lock lease checks). Closures run on
//! the timer thread and must be short.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

type Task = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    tasks: HashMap<u64, Task>,
    next_id: u64,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    stop: AtomicBool,
}

/// A timer thread; dropping the last handle stops it (pending tasks are dropped unrun).
pub(crate) struct Timer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Timer {
    /// Starts the thread.
    pub(crate) fn start(name: &str) -> std::io::Result<Timer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-timer"))
            .spawn(move || run(s))?;
        Ok(Timer {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `f` at `at` (at once if `at` has passed); the id cancels it.
    pub(crate) fn schedule(&self, at: Instant, f: impl FnOnce() + Send + 'static) -> u64 {
        let mut s = lock(&self.shared.state);
        s.next_id += 1;
        let id = s.next_id;
        s.tasks.insert(id, Box::new(f));
        s.heap.push(Reverse((at, id)));
        drop(s);
        self.shared.cond.notify_one();
        id
    }

    /// Cancels a task not yet run; false when it ran (or runs) already.
    #[allow(dead_code)]
    pub(crate) fn cancel(&self, id: u64) -> bool {
        lock(&self.shared.state).tasks.remove(&id).is_some()
    }

    /// Stops the thread and joins it (unless called on the timer thread itself).
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.cond.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: Arc<Shared>) {
    let mut s = lock(&shared.state);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        match s.heap.peek().copied() {
            Some(Reverse((at, id))) if at <= now => {
                s.heap.pop();
                if let Some(task) = s.tasks.remove(&id) {
                    drop(s);
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).is_err() {
                        log::error!("a client timer task panicked");
                    }
                    s = lock(&shared.state);
                }
            }
            Some(Reverse((at, _))) => {
                s = shared
                    .cond
                    .wait_timeout(s, at - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            None => s = shared.cond.wait(s).unwrap_or_else(|p| p.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn runs_in_order_and_cancels() {
        let t = Timer::start("t").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let now = Instant::now();
        let tx2 = tx.clone();
        t.schedule(now + Duration::from_millis(30), move || {
            tx2.send(2).unwrap()
        });
        let tx3 = tx.clone();
        let c = t.schedule(now + Duration::from_millis(20), move || {
            tx3.send(9).unwrap()
        });
        t.schedule(now + Duration::from_millis(10), move || tx.send(1).unwrap());
        assert!(t.cancel(c));
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), 1);
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), 2);
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        assert!(now.elapsed() >= Duration::from_millis(30));
    }
}
