//! CRC32C (Castagnoli), the checksum of every on-disk structure of the store.
//!
//! Standard parameters: reflected polynomial `0x82F63B78`, initial value and final xor
//! `0xFFFF_FFFF`. On x86_64 CPUs with SSE4.2 the `crc32` instruction is used (detected
//! once at run time); everywhere else a slicing-by-8 table implementation runs.

use std::sync::OnceLock;

const POLY: u32 = 0x82F6_3B78;

/// Lookup tables for slicing-by-8, built at compile time.
static TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// CRC32C of `data` (one shot).
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

/// An incremental CRC32C computation: `new()`, any number of `update`s, `finish()`.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// A fresh computation.
    pub fn new() -> Self {
        Crc32c { state: 0xFFFF_FFFF }
    }

    /// Feeds more bytes.
    #[inline]
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.state = update_raw(self.state, data);
        self
    }

    /// The checksum of everything fed so far.
    #[inline]
    pub fn finish(&self) -> u32 {
        self.state ^ 0xFFFF_FFFF
    }
}

fn update_raw(state: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if hw_available() {
            // SAFETY: `hw_available` confirmed at run time that this CPU supports SSE4.2,
            // the only target feature `update_sse42` is compiled with.
            return unsafe { update_sse42(state, data) };
        }
    }
    update_table(state, data)
}

/// Whether the hardware path is used on this CPU.
pub fn hw_available() -> bool {
    static HW: OnceLock<bool> = OnceLock::new();
    *HW.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("sse4.2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The portable slicing-by-8 implementation on a raw (pre-inverted) state.
pub(crate) fn update_table(mut crc: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][((hi >> 8) & 0xFF) as usize]
            ^ t[1][((hi >> 16) & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ b as u32) & 0xFF) as usize];
    }
    crc
}

/// Bytes per stream when long input is checksummed as three streams side by side.
const LONG_STREAM: usize = 4096;
/// Bytes per stream for what is left of long input, or medium input.
const SHORT_STREAM: usize = 256;

/// Advances a raw CRC state over a fixed number of zero bytes: a linear map, applied
/// with one table lookup per state byte. It is how the states of streams checksummed
/// separately are joined: the state after `A` then `B` is the state after `A` advanced
/// over `len(B)` zeros, xor the state of `B` alone from 0.
struct ZerosShift([[u32; 256]; 4]);

impl ZerosShift {
    fn new(zeros: usize) -> ZerosShift {
        // the image of each state bit, then of each value of each state byte
        let z = vec![0u8; zeros];
        let bit: Vec<u32> = (0..32).map(|k| update_table(1 << k, &z)).collect();
        let mut t = [[0u32; 256]; 4];
        for (byte, row) in t.iter_mut().enumerate() {
            for (v, slot) in row.iter_mut().enumerate() {
                *slot = (0..8)
                    .filter(|k| v >> k & 1 != 0)
                    .fold(0, |acc, k| acc ^ bit[byte * 8 + k]);
            }
        }
        ZerosShift(t)
    }

    #[inline]
    fn apply(&self, s: u32) -> u32 {
        let t = &self.0;
        t[0][(s & 0xFF) as usize]
            ^ t[1][((s >> 8) & 0xFF) as usize]
            ^ t[2][((s >> 16) & 0xFF) as usize]
            ^ t[3][(s >> 24) as usize]
    }
}

/// The shifts over one long and one short stream, built on first use.
fn shifts() -> &'static (ZerosShift, ZerosShift) {
    static SHIFTS: OnceLock<(ZerosShift, ZerosShift)> = OnceLock::new();
    SHIFTS.get_or_init(|| (ZerosShift::new(LONG_STREAM), ZerosShift::new(SHORT_STREAM)))
}

/// The SSE4.2 implementation on a raw (pre-inverted) state. The `crc32` instruction
/// takes three cycles but a new one can start every cycle, so input of three streams'
/// length or more is checksummed as three independent streams interleaved, then
/// joined ([`ZerosShift`]): about three times the rate of one dependent chain.
///
/// # Safety
/// The caller must make sure the CPU supports SSE4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn update_sse42(mut crc: u32, mut data: &[u8]) -> u32 {
    if data.len() >= 3 * SHORT_STREAM {
        let (long, short) = shifts();
        for (len, shift) in [(LONG_STREAM, long), (SHORT_STREAM, short)] {
            while data.len() >= 3 * len {
                let (block, rest) = data.split_at(3 * len);
                // SAFETY: SSE4.2 is enabled here and guaranteed by the caller.
                crc = unsafe { three_streams(crc, block, shift) };
                data = rest;
            }
        }
    }
    // SAFETY: as above.
    unsafe { one_stream(crc, data) }
}

/// `block` (three streams of equal length, a multiple of 8, which `shift` advances
/// over) as three interleaved streams.
///
/// # Safety
/// The caller must make sure the CPU supports SSE4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[allow(unused_unsafe)] // the intrinsics are safe inside this function on newer compilers
unsafe fn three_streams(crc: u32, block: &[u8], shift: &ZerosShift) -> u32 {
    use std::arch::x86_64::_mm_crc32_u64;
    let len = block.len() / 3;
    debug_assert!(len.is_multiple_of(8) && block.len() == 3 * len);
    let (a, bc) = block.split_at(len);
    let (b, c) = bc.split_at(len);
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
    let (mut ca, mut cb, mut cc) = (crc as u64, 0u64, 0u64);
    for ((wa, wb), wc) in a
        .chunks_exact(8)
        .zip(b.chunks_exact(8))
        .zip(c.chunks_exact(8))
    {
        // SAFETY: SSE4.2 is enabled for this function and guaranteed by the caller.
        unsafe {
            ca = _mm_crc32_u64(ca, word(wa));
            cb = _mm_crc32_u64(cb, word(wb));
            cc = _mm_crc32_u64(cc, word(wc));
        }
    }
    let ab = shift.apply(ca as u32) ^ cb as u32;
    shift.apply(ab) ^ cc as u32
}

/// One dependent chain of `crc32` instructions.
///
/// # Safety
/// The caller must make sure the CPU supports SSE4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[allow(unused_unsafe)] // the intrinsics are safe inside this function on newer compilers
unsafe fn one_stream(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = crc as u64;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let v = u64::from_le_bytes([ch[0], ch[1], ch[2], ch[3], ch[4], ch[5], ch[6], ch[7]]);
        // SAFETY: SSE4.2 is enabled for this function and guaranteed by the caller.
        c = unsafe { _mm_crc32_u64(c, v) };
    }
    let mut c32 = c as u32;
    for &b in chunks.remainder() {
        // SAFETY: as above.
        c32 = unsafe { _mm_crc32_u8(c32, b) };
    }
    c32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(data: &[u8]) -> u32 {
        update_table(0xFFFF_FFFF, data) ^ 0xFFFF_FFFF
    }

    /// Known values (RFC 3720 appendix B.4 and the standard check value).
    const KNOWN: &[(&[u8], u32)] = &[
        (b"", 0),
        (b"123456789", 0xE306_9283),
        (b"a", 0xC1D0_4330),
        (&[0u8; 32], 0x8A91_36AA),
        (&[0xFFu8; 32], 0x62A8_AB43),
    ];

    #[test]
    fn table_known_values() {
        for (d, v) in KNOWN {
            assert_eq!(table(d), *v, "{d:?}");
        }
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(table(&inc), 0x46DD_794E);
    }

    #[test]
    fn dispatch_known_values() {
        for (d, v) in KNOWN {
            assert_eq!(crc32c(d), *v);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn hardware_known_values_and_agreement() {
        if !hw_available() {
            eprintln!("skipped: CPU has no SSE4.2");
            return;
        }
        for (d, v) in KNOWN {
            // SAFETY: SSE4.2 availability checked above.
            let hw = unsafe { update_sse42(0xFFFF_FFFF, d) } ^ 0xFFFF_FFFF;
            assert_eq!(hw, *v);
        }
        let data: Vec<u8> = (0..40_000u32)
            .map(|i| (i * 31 + 7 + (i >> 9)) as u8)
            .collect();
        let three_long = 3 * LONG_STREAM;
        let three_short = 3 * SHORT_STREAM;
        let mut lens: Vec<usize> = vec![0, 1, 7, 8, 9, 63, 64, 1000, 4000];
        // around every switch between three streams and one, and between stream sizes
        for base in [
            three_short,
            2 * three_short,
            three_long,
            three_long + three_short,
        ] {
            lens.extend(base - 9..base + 9);
        }
        lens.extend([2 * three_long, 2 * three_long + 3 * three_short + 5, 39_000]);
        for start in 0..9 {
            for &len in &lens {
                let s = &data[start..start + len];
                for init in [0xFFFF_FFFF, 0, 0x1234_5678] {
                    // SAFETY: as above.
                    let hw = unsafe { update_sse42(init, s) };
                    assert_eq!(
                        hw,
                        update_table(init, s),
                        "start {start} len {len} init {init:x}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_zeros_shift_is_the_state_advanced_over_that_many_zeros() {
        for zeros in [8, 256, 4096] {
            let shift = ZerosShift::new(zeros);
            for s in [0u32, 1, 0x8000_0000, 0xDEAD_BEEF, 0xFFFF_FFFF] {
                assert_eq!(shift.apply(s), update_table(s, &vec![0u8; zeros]));
            }
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut c = Crc32c::new();
        c.update(&data[..13])
            .update(&data[13..500])
            .update(&data[500..]);
        assert_eq!(c.finish(), crc32c(&data));
    }
}
