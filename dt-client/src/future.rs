//! [`KvFuture`]: the one-shot result of a client operation, usable as a
//! `std::future::Future` from any executor (no runtime is needed: the client's own
//! threads complete it and wake the task), or blocking with `wait`. It is
//! [`dt_common::oneshot`] with [`KvError`] as its error.

use dt_common::oneshot::{oneshot, OneshotError, OneshotFuture, OneshotPromise};

use crate::kv::KvError;

/// The receiving half: `.await` it on any executor, or block with
/// [`OneshotFuture::wait`]. Every operation has a deadline, so a blocking wait returns
/// by then at the latest.
pub type KvFuture<T> = OneshotFuture<T, KvError>;

/// The completing half: `complete` it once.
pub type KvPromise<T> = OneshotPromise<T, KvError>;

/// A connected promise/future pair.
pub fn kv_channel<T>() -> (KvPromise<T>, KvFuture<T>) {
    oneshot()
}

impl OneshotError for KvError {
    fn polled_after_completion() -> Self {
        KvError::InvalidArgument("KvFuture polled after completion".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wait_timeout_gives_the_future_back() {
        let (p, f) = kv_channel::<i32>();
        let f = f.wait_timeout(Duration::from_millis(10)).unwrap_err();
        p.complete(Ok(1));
        assert_eq!(f.wait().unwrap(), 1);
    }
}
