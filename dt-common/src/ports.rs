//! [`free_loopback_ports`]: ports for the servers that tests and example programs start
//! on 127.0.0.1.
//!
//! Binding port 0 and releasing it hands out a port of the kernel's ephemeral range,
//! the range every outgoing connection's local port is also taken from. Between the
//! release and the server's own bind, a client connection of anything else running
//! (another test in the same process, say) can be given that very port, and the
//! server's bind then fails with "address in use". The ports handed out here lie
//! below the ephemeral range, where no outgoing connection is ever placed, and are
//! distinct within the process.

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const FIRST: u32 = 20_000;
/// Fewer candidate ports than this below the ephemeral range: use that range.
const MIN_SPAN: u32 = 1_000;

/// `n` distinct ports of 127.0.0.1 that nothing listens on right now, each checked by
/// binding it (all are bound at once, then released). They come from below the
/// kernel's ephemeral port range (Linux: `/proc/sys/net/ipv4/ip_local_port_range`;
/// 32768 elsewhere), from 20000 up, starting at an offset taken from the process id
/// and moving on with every call, so that two calls in one process never return the
/// same port and two processes seldom do. When that range is too small, ports of the
/// ephemeral range are used.
///
/// ```
/// let ports = dt_common::ports::free_loopback_ports(2).unwrap();
/// assert_ne!(ports[0], ports[1]);
/// let server = std::net::TcpListener::bind(("127.0.0.1", ports[0])).unwrap();
/// # drop(server);
/// ```
pub fn free_loopback_ports(n: usize) -> io::Result<Vec<u16>> {
    let end = ephemeral_start().unwrap_or(32_768);
    if end < FIRST + MIN_SPAN {
        return ephemeral_ports(n);
    }
    let span = end - FIRST;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let seed = std::process::id().wrapping_mul(2_654_435_761) % span;
        let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    pick(&NEXT, FIRST, span, n)
}

/// `n` ports bound at once among `first..first + span`, taking candidates in turn from
/// `next` (modulo `span`), each at most once; then released.
fn pick(next: &AtomicU32, first: u32, span: u32, n: usize) -> io::Result<Vec<u16>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..span {
        if held.len() == n {
            break;
        }
        let port = (first + next.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "fewer than {n} free loopback ports in {first}..{}",
                first + span
            ),
        ));
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// The first port of the ephemeral range, when the system says.
fn ephemeral_start() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// `n` distinct ports of the ephemeral range (bound at once, then released).
fn ephemeral_ports(n: usize) -> io::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let end = ephemeral_start().unwrap_or(32_768);
        let a = free_loopback_ports(5).unwrap();
        let b = free_loopback_ports(5).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        for &p in &all {
            if end >= FIRST + MIN_SPAN {
                assert!((FIRST..end).contains(&(p as u32)), "{p}");
            }
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 10, "two calls gave the same port");
    }

    #[test]
    fn a_port_in_use_is_skipped_and_too_few_is_an_error() {
        let base = free_loopback_ports(1).unwrap()[0] as u32;
        let _busy = TcpListener::bind(("127.0.0.1", base as u16)).unwrap();
        let next = AtomicU32::new(0);
        // candidates base, base + 1: the first is taken
        assert_eq!(pick(&next, base, 2, 1).unwrap(), vec![base as u16 + 1]);
        let e = pick(&AtomicU32::new(0), base, 1, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("fewer than 1 free"), "{e}");
    }
}
