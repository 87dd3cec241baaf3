//! [`prefetch`]: a hint that asks the CPU to start loading a cache line now, so that a
//! later read of it does not wait for memory.
//!
//! A DtKV put reads its key's map slot, then the key's holder, then frees the value it
//! replaces, and each of these was last touched thousands of puts ago: three dependent
//! waits on memory. A state machine hinted a few entries ahead
//! (`dt_raft::sm::StateMachine::prepare`) can issue those loads early with this, and
//! execute the entries in between meanwhile.
//!
//! ```
//! let values = vec![7u64; 1024];
//! dt_common::prefetch::prefetch(&values[512]);
//! // any address is fine: a prefetch never faults
//! dt_common::prefetch::prefetch(std::ptr::null::<u8>());
//! assert_eq!(values[512], 7);
//! ```

/// Starts loading the cache line that holds `p` (into every cache level). A hint
/// only: it reads nothing the caller sees, never faults, and accepts any address
/// (dangling, null, freed). Does nothing on targets other than x86-64.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 does not access memory architecturally: it cannot fault or
    // change any state a program can observe, whatever the address. The intrinsic is
    // `unsafe` only because it needs SSE, which every x86-64 CPU has.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wild_addresses_do_not_fault_and_nothing_changes() {
        let v: Vec<u32> = (0..4096).collect();
        for i in (0..v.len()).step_by(16) {
            prefetch(&v[i]);
        }
        // a real read of any of these would crash the test
        prefetch(v.as_ptr().wrapping_add(1 << 40));
        prefetch(usize::MAX as *const u8);
        prefetch(std::ptr::null::<u64>());
        assert!(v.iter().enumerate().all(|(i, &x)| x as usize == i));
    }
}
