//! [`RpcFuture`]: a one-shot result usable as a `std::future::Future` (any executor), or
//! blocking with `wait`. It is [`dt_common::oneshot`] with [`NetError`] as its error.

use dt_common::oneshot::{oneshot, OneshotError, OneshotFuture, OneshotPromise};

use crate::error::NetError;

/// The receiving half: await it, or block with [`OneshotFuture::wait`].
pub type RpcFuture<T> = OneshotFuture<T, NetError>;

/// The completing half, moved into the callback that the IO thread runs.
pub type RpcPromise<T> = OneshotPromise<T, NetError>;

/// A connected promise/future pair.
pub fn rpc_channel<T>() -> (RpcPromise<T>, RpcFuture<T>) {
    oneshot()
}

impl OneshotError for NetError {
    fn polled_after_completion() -> Self {
        NetError::InvalidArgument("RpcFuture polled after completion".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn blocking_wait_and_timeout() {
        let (p, f) = rpc_channel::<i32>();
        let f = f.wait_timeout(Duration::from_millis(10)).unwrap_err();
        std::thread::spawn(move || p.complete(Err(NetError::Stopped)));
        assert!(matches!(f.wait(), Err(NetError::Stopped)));
    }
}
