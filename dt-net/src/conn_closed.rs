//! The connection-closed hook of a [`crate::NioServer`]: listeners registered in
//! [`crate::NioServerConfig::conn_closed`] (or with
//! [`crate::NioServer::add_conn_closed_listener`]) are told once about every accepted
//! connection that closes, whatever closed it: the peer (end of stream, reset), the
//! server (bad frame, bad handshake, handshake deadline, read or write error) or
//! [`crate::NioServer::stop`].
//!
//! State kept per connection elsewhere (a processor's map keyed by [`ConnRef`], watch
//! registrations, ...) can be freed there instead of waiting for a timeout.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use dt_net::{NioServer, NioServerConfig};
//!
//! let closed = Arc::new(AtomicUsize::new(0));
//! let mut server = NioServer::new(NioServerConfig { io_threads: 1, ..Default::default() });
//! let c = closed.clone();
//! server.add_conn_closed_listener(move |ev| {
//!     // On the IO thread: keep it short, never block.
//!     assert!(ev.process_info.is_none()); // this one never handshook
//!     c.fetch_add(1, Ordering::Relaxed);
//! });
//! server.start().unwrap();
//! drop(std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap());
//! let end = Instant::now() + Duration::from_secs(5);
//! while closed.load(Ordering::Relaxed) == 0 && Instant::now() < end {
//!     std::thread::sleep(Duration::from_millis(5));
//! }
//! assert_eq!(closed.load(Ordering::Relaxed), 1);
//! server.stop(Duration::from_secs(1));
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use crate::handshake::ProcessInfo;
use crate::queue::ConnRef;

/// What a connection-closed listener is told about a connection that closed.
#[derive(Debug, Clone, Copy)]
pub struct ConnClosed<'a> {
    /// The connection (as processors saw it in [`crate::ReqContext::conn`]); it never
    /// matches a later connection.
    pub conn: ConnRef,
    /// The local port it came in on.
    pub local_port: u16,
    /// The peer's address, when known.
    pub remote: Option<SocketAddr>,
    /// The client's identity from its handshake (`None`: it never handshook).
    pub process_info: Option<ProcessInfo>,
    /// Why it closed, as logged (e.g. `"closed by peer"`, a framing error, `"stopped"`).
    pub reason: &'a str,
}

/// A connection-closed listener: called on the IO thread that owned the connection,
/// right after the connection is closed and forgotten, exactly once per accepted
/// connection. It must not block (it delays every other connection of that thread);
/// hand slow work to another thread. A panic in it is caught and logged.
pub type ConnClosedListener = Arc<dyn Fn(&ConnClosed<'_>) + Send + Sync>;

/// Runs every listener, each guarded against panics.
pub(crate) fn notify(listeners: &[ConnClosedListener], ev: &ConnClosed<'_>) {
    for l in listeners {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l(ev)));
        if r.is_err() {
            log::error!("connection-closed listener panicked on {:?}", ev.conn);
        }
    }
}
