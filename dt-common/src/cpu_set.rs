//! [`CpuSet`]: a set of CPUs, written as a Linux CPU list (`0-3,6`), and restricting
//! the calling thread to it (what `taskset` does for a whole process).
//!
//! The server uses it for its `dispatcherCpus` setting: a group's dispatcher thread
//! (the one that owns the group's state) runs only on the CPUs listed.
//!
//! ```
//! use dt_common::cpu_set::CpuSet;
//!
//! let set = CpuSet::parse("0-2, 5").unwrap();
//! assert!(set.contains(1) && set.contains(5) && !set.contains(3));
//! assert_eq!(set.to_string(), "0-2,5");
//! assert!(CpuSet::parse("3-1").is_err());
//!
//! // Pinning a thread to a CPU it may use, then reading it back (Linux).
//! # #[cfg(target_os = "linux")]
//! std::thread::spawn(|| {
//!     let allowed = CpuSet::allowed().unwrap();
//!     let first = allowed.iter().next().unwrap();
//!     let one = CpuSet::parse(&first.to_string()).unwrap();
//!     one.pin_current_thread().unwrap();
//!     assert_eq!(CpuSet::allowed().unwrap(), one);
//! })
//! .join()
//! .unwrap();
//! ```

use std::fmt;
use std::io;

/// Words of the set: the kernel's `cpu_set_t` (1 024 CPUs).
const WORDS: usize = 16;

/// A set of CPU numbers below [`CpuSet::MAX_CPUS`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuSet {
    bits: [u64; WORDS],
}

/// Why a CPU list cannot be read (see [`CpuSet::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuListError {
    /// The list names no CPU.
    Empty,
    /// An item is neither a number nor a range `a-b`.
    NotANumber(String),
    /// A range whose end is below its start.
    BackwardRange {
        /// The start of the range.
        from: usize,
        /// Its end.
        to: usize,
    },
    /// A CPU number of [`CpuSet::MAX_CPUS`] or more.
    TooLarge(usize),
    /// CPUs the calling thread may not use ([`CpuSet::check_usable`]): offline, or
    /// taken away by `taskset`, a container or a cgroup.
    Unavailable {
        /// The CPUs of the set that cannot be used.
        missing: Box<CpuSet>,
        /// The CPUs that can.
        allowed: Box<CpuSet>,
    },
    /// The system cannot restrict threads to CPUs (not Linux), or would not say which
    /// CPUs the thread may use.
    NoAffinity(String),
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuListError::Empty => write!(f, "the CPU list names no CPU (e.g. 1 or 0-3,6)"),
            CpuListError::NotANumber(t) => write!(
                f,
                "'{t}' is not a CPU number or a range of them (e.g. 1 or 0-3,6)"
            ),
            CpuListError::BackwardRange { from, to } => {
                write!(f, "the CPU range {from}-{to} ends before it starts")
            }
            CpuListError::TooLarge(n) => write!(
                f,
                "CPU {n} is beyond the {} CPUs a set can name",
                CpuSet::MAX_CPUS
            ),
            CpuListError::Unavailable { missing, allowed } => write!(
                f,
                "CPU {missing} is not available to this process (it may use {allowed})"
            ),
            CpuListError::NoAffinity(why) => write!(f, "cannot pin threads here: {why}"),
        }
    }
}

impl std::error::Error for CpuListError {}

impl CpuSet {
    /// CPU numbers a set can hold: 0 to 1 023 (the size of the kernel's `cpu_set_t`).
    pub const MAX_CPUS: usize = WORDS * 64;

    /// The empty set.
    pub fn new() -> Self {
        CpuSet::default()
    }

    /// Reads a CPU list: numbers and ranges `a-b` (both ends included) separated by
    /// commas, spaces around each allowed, as Linux writes them (`Cpus_allowed_list`
    /// in `/proc/<pid>/status`, `taskset -c`).
    pub fn parse(text: &str) -> Result<CpuSet, CpuListError> {
        if text.trim().is_empty() {
            return Err(CpuListError::Empty);
        }
        let mut set = CpuSet::new();
        for item in text.split(',') {
            let item = item.trim();
            let num = |t: &str| -> Result<usize, CpuListError> {
                let t = t.trim();
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CpuListError::NotANumber(item.to_string()));
                }
                // all digits: only an overflow fails to parse, and is too large too
                let n = t.parse::<usize>().unwrap_or(usize::MAX);
                if n < Self::MAX_CPUS {
                    Ok(n)
                } else {
                    Err(CpuListError::TooLarge(n))
                }
            };
            let (from, to) = match item.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(item)?;
                    (n, n)
                }
            };
            if to < from {
                return Err(CpuListError::BackwardRange { from, to });
            }
            for cpu in from..=to {
                set.insert(cpu);
            }
        }
        Ok(set)
    }

    /// Adds `cpu`; false (and nothing added) when it is [`CpuSet::MAX_CPUS`] or more.
    pub fn insert(&mut self, cpu: usize) -> bool {
        if cpu >= Self::MAX_CPUS {
            return false;
        }
        self.bits[cpu / 64] |= 1 << (cpu % 64);
        true
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < Self::MAX_CPUS && self.bits[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// Whether the set holds no CPU.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// How many CPUs the set holds.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The CPUs of the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..Self::MAX_CPUS).filter(|&c| self.contains(c))
    }

    /// The CPUs of the set that are not in `other`.
    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        let mut out = *self;
        for (w, o) in out.bits.iter_mut().zip(other.bits.iter()) {
            *w &= !o;
        }
        out
    }

    /// The CPUs the calling thread may run on (`sched_getaffinity`): the machine's
    /// online CPUs less what `taskset`, a container or a cgroup took away.
    pub fn allowed() -> io::Result<CpuSet> {
        let mut set = CpuSet::new();
        sys::get_affinity(&mut set.bits)?;
        Ok(set)
    }

    /// Checks that the set names at least one CPU ([`CpuListError::Empty`]) and only
    /// CPUs the calling thread may use ([`CpuListError::Unavailable`]), where the
    /// system can tell ([`CpuListError::NoAffinity`] elsewhere): what pinning a thread
    /// started from this one to the set needs.
    pub fn check_usable(&self) -> Result<(), CpuListError> {
        if self.is_empty() {
            return Err(CpuListError::Empty);
        }
        let allowed = CpuSet::allowed().map_err(|e| CpuListError::NoAffinity(e.to_string()))?;
        let missing = self.difference(&allowed);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CpuListError::Unavailable {
                missing: Box::new(missing),
                allowed: Box::new(allowed),
            })
        }
    }

    /// Restricts the calling thread to the CPUs of the set (`sched_setaffinity`).
    /// Fails (`InvalidInput`) when none of them is one the thread may use, and where
    /// the system has no such call (not Linux: `Unsupported`).
    pub fn pin_current_thread(&self) -> io::Result<()> {
        sys::set_affinity(&self.bits)
    }
}

impl fmt::Display for CpuSet {
    /// The set as a CPU list, ranges joined (`0-3,6`); empty for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut cpu = 0;
        while cpu < Self::MAX_CPUS {
            if !self.contains(cpu) {
                cpu += 1;
                continue;
            }
            let start = cpu;
            while cpu + 1 < Self::MAX_CPUS && self.contains(cpu + 1) {
                cpu += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == cpu {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{cpu}")?;
            }
            cpu += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys {
    use std::io;
    use std::os::raw::c_int;

    mod ffi {
        use std::os::raw::c_int;
        extern "C" {
            pub fn sched_getaffinity(pid: c_int, size: usize, mask: *mut u64) -> c_int;
            pub fn sched_setaffinity(pid: c_int, size: usize, mask: *const u64) -> c_int;
        }
    }

    fn checked(r: c_int) -> io::Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn get_affinity(bits: &mut [u64; super::WORDS]) -> io::Result<()> {
        // SAFETY: the kernel writes at most `size_of_val(bits)` bytes into `bits`, an
        // exclusively borrowed array of that size; pid 0 is the calling thread.
        checked(unsafe {
            ffi::sched_getaffinity(0, std::mem::size_of_val(bits), bits.as_mut_ptr())
        })
    }

    pub fn set_affinity(bits: &[u64; super::WORDS]) -> io::Result<()> {
        // SAFETY: the kernel reads `size_of_val(bits)` bytes from `bits`, a borrowed
        // array of that size; pid 0 is the calling thread.
        checked(unsafe { ffi::sched_setaffinity(0, std::mem::size_of_val(bits), bits.as_ptr()) })
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "CPU affinity is only supported on Linux",
        )
    }

    pub fn get_affinity(_bits: &mut [u64; super::WORDS]) -> io::Result<()> {
        Err(unsupported())
    }

    pub fn set_affinity(_bits: &[u64; super::WORDS]) -> io::Result<()> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_as_linux_writes_them() {
        let s = CpuSet::parse("0-3,6, 8 - 9 ,1").unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(s.len(), 7);
        assert_eq!(s.to_string(), "0-3,6,8-9");
        assert_eq!(CpuSet::parse("1023").unwrap().to_string(), "1023");
        assert_eq!(CpuSet::parse(" 5 ").unwrap().to_string(), "5");
        // the text of a set reads back as the same set
        let t = CpuSet::parse("0,2-4,63-65,1000").unwrap();
        assert_eq!(CpuSet::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        assert_eq!(CpuSet::parse(""), Err(CpuListError::Empty));
        assert_eq!(CpuSet::parse("  "), Err(CpuListError::Empty));
        for (text, item) in [
            ("1,,2", ""),
            ("x", "x"),
            ("-1", "-1"),
            ("1-", "1-"),
            ("+1", "+1"),
        ] {
            assert_eq!(
                CpuSet::parse(text),
                Err(CpuListError::NotANumber(item.into())),
                "{text}"
            );
        }
        assert_eq!(
            CpuSet::parse("3-1"),
            Err(CpuListError::BackwardRange { from: 3, to: 1 })
        );
        assert_eq!(CpuSet::parse("1024"), Err(CpuListError::TooLarge(1024)));
        assert_eq!(
            CpuSet::parse("99999999999999999999999"),
            Err(CpuListError::TooLarge(usize::MAX))
        );
        let msg = CpuSet::parse("a").unwrap_err().to_string();
        assert!(msg.contains("'a'") && msg.contains("0-3,6"), "{msg}");
    }

    #[test]
    fn set_operations() {
        let mut s = CpuSet::new();
        assert!(s.is_empty() && s.to_string().is_empty());
        assert!(s.insert(64) && !s.insert(CpuSet::MAX_CPUS));
        assert!(s.contains(64) && !s.contains(63) && !s.contains(CpuSet::MAX_CPUS));
        let a = CpuSet::parse("0-5").unwrap();
        let b = CpuSet::parse("2-3").unwrap();
        assert_eq!(a.difference(&b).to_string(), "0-1,4-5");
        assert!(b.difference(&a).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_pinned_to_one_allowed_cpu_runs_only_there() {
        let allowed = CpuSet::allowed().unwrap();
        assert!(!allowed.is_empty());
        let last = allowed.iter().last().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut one = CpuSet::new();
            one.insert(last);
            one.pin_current_thread().unwrap();
            tx.send(CpuSet::allowed().unwrap()).unwrap();
        })
        .join()
        .unwrap();
        let seen = rx.recv().unwrap();
        assert_eq!(seen.iter().collect::<Vec<_>>(), vec![last]);
        // this thread was not touched
        assert_eq!(CpuSet::allowed().unwrap(), allowed);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn usable_sets_are_told_from_unusable_ones() {
        let allowed = CpuSet::allowed().unwrap();
        assert_eq!(allowed.check_usable(), Ok(()));
        assert_eq!(CpuSet::new().check_usable(), Err(CpuListError::Empty));
        if allowed.contains(CpuSet::MAX_CPUS - 1) {
            return;
        }
        let mut set = allowed;
        set.insert(CpuSet::MAX_CPUS - 1);
        let e = set.check_usable().unwrap_err();
        let mut missing = CpuSet::new();
        missing.insert(CpuSet::MAX_CPUS - 1);
        assert_eq!(
            e,
            CpuListError::Unavailable {
                missing: Box::new(missing),
                allowed: Box::new(allowed)
            }
        );
        assert_eq!(
            e.to_string(),
            format!("CPU 1023 is not available to this process (it may use {allowed})")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinning_to_no_usable_cpu_is_refused() {
        let allowed = CpuSet::allowed().unwrap();
        let mut outside = CpuSet::new();
        outside.insert(CpuSet::MAX_CPUS - 1);
        if allowed.contains(CpuSet::MAX_CPUS - 1) {
            return; // a machine with 1 024 CPUs: nothing is outside
        }
        let e = std::thread::spawn(move || outside.pin_current_thread())
            .join()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }
}
