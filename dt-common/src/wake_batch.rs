//! Coalescing the cross-thread wake-ups an event loop's pass causes.
//!
//! A Dispatcher's round may answer hundreds of requests whose IO worker each answer
//! would wake (a syscall, and a wake-up of the worker for a handful of answers). Inside
//! [`scope`], a producer that would wake another thread calls [`defer`] instead: the
//! wake-up is held and made once when the scope ends, whatever the pass did. Outside a
//! scope `defer` declines and the producer wakes at once, so code that never opens a
//! scope behaves as before.
//!
//! A scope must not span a wait: everything deferred waits until the scope's end. The
//! Dispatcher opens one around each round, which never blocks.

use std::cell::RefCell;
use std::sync::Arc;

/// Something that can be woken later (an IO worker's queue, for one).
pub trait DeferredWake: Send + Sync {
    /// Wakes it now.
    fn wake_now(&self);
}

thread_local! {
    static HELD: RefCell<Option<Vec<Arc<dyn DeferredWake>>>> = const { RefCell::new(None) };
}

/// Runs `f` with wake-ups deferred to its end (see the module documentation). A scope
/// inside a scope adds nothing: the outer one wakes. The held wake-ups are made even
/// when `f` panics.
pub fn scope<R>(f: impl FnOnce() -> R) -> R {
    let opened = HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.is_none() {
            *h = Some(Vec::new());
            true
        } else {
            false
        }
    });
    if !opened {
        return f();
    }
    struct Close;
    impl Drop for Close {
        fn drop(&mut self) {
            let held = HELD.with(|h| h.borrow_mut().take()).unwrap_or_default();
            for w in held {
                w.wake_now();
            }
        }
    }
    let _close = Close;
    f()
}

/// Holds the wake-up of `w` until the current scope ends; false (and nothing held) when
/// this thread is not inside a scope: then the caller wakes `w` itself.
pub fn defer(w: &Arc<dyn DeferredWake>) -> bool {
    HELD.with(|h| match h.borrow_mut().as_mut() {
        Some(list) => {
            list.push(w.clone());
            true
        }
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl DeferredWake for Count {
        fn wake_now(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn outside_a_scope_nothing_is_held() {
        let c: Arc<dyn DeferredWake> = Arc::new(Count::default());
        assert!(!defer(&c));
    }

    #[test]
    fn a_scope_wakes_at_its_end_and_a_nested_one_adds_nothing() {
        let c = Arc::new(Count::default());
        let w: Arc<dyn DeferredWake> = c.clone();
        scope(|| {
            assert!(defer(&w));
            scope(|| assert!(defer(&w)));
            // the nested scope's end woke nothing
            assert_eq!(c.0.load(Ordering::SeqCst), 0);
        });
        assert_eq!(c.0.load(Ordering::SeqCst), 2);
        assert!(!defer(&w), "the scope is closed");
    }

    #[test]
    fn a_panicking_scope_still_wakes() {
        let c = Arc::new(Count::default());
        let w: Arc<dyn DeferredWake> = c.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scope(|| {
                defer(&w);
                panic!("boom");
            })
        }));
        assert!(r.is_err());
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        assert!(!defer(&w));
    }
}
