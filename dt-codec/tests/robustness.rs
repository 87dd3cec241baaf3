//! Arbitrary bytes never panic, fragmentation never changes the verdict, and decoding never
//! allocates more than a small multiple of the input (measured with a counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use dt_codec::{PbMessage, PbMessageCallback, PbParser};
use proptest::prelude::*;

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel do not disturb each other.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(n: usize) {
    let _ = ALLOCATED.try_with(|a| a.set(a.get() + n));
}

fn allocated() -> usize {
    ALLOCATED.with(|a| a.get())
}

// SAFETY: forwards to the system allocator unchanged; only counts requested bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn parse_cut(data: &Bytes, declared: usize, cuts: &[usize]) -> Result<Option<PbMessage>, String> {
    let mut p = PbParser::new(PbMessageCallback::default());
    p.prepare(declared).map_err(|e| e.to_string())?;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(data.len());
    points.sort();
    let mut last = 0;
    let mut done = false;
    for c in points {
        if c > last {
            let fed = p.feed(&data.slice(last..c)).map_err(|e| e.to_string())?;
            assert!(fed.consumed <= c - last);
            done = fed.status != dt_codec::ParseStatus::NeedMore;
            last = c;
        }
    }
    if data.is_empty() {
        done = p.feed(data).map_err(|e| e.to_string())?.status != dt_codec::ParseStatus::NeedMore;
    }
    Ok(if done {
        Some(p.callback_mut().take())
    } else {
        None
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_are_safe(
        data in prop::collection::vec(any::<u8>(), 0..256),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        extra in 0usize..4,
    ) {
        let data = Bytes::from(data);
        // Declared size equal to the data, and larger (the message never completes).
        let whole = parse_cut(&data, data.len(), &[]);
        let split = parse_cut(&data, data.len(), &cuts);
        prop_assert_eq!(&whole, &split);
        let before = allocated();
        let _ = parse_cut(&data, data.len() + extra * 1_000_000_000, &cuts);
        let used = allocated() - before;
        // The callback stores each field (<= 2x for the field vector's growth), plus
        // split buffers; never anything proportional to declared lengths.
        prop_assert!(used <= 64 * data.len() + 4096, "allocated {} for {} input bytes", used, data.len());
    }
}

#[test]
fn deep_nesting_is_just_bytes() {
    // 100 000 levels of "field 1, nested": the schema-less parser sees one bytes field and
    // recursion only happens where a caller asks for it, one level at a time.
    let mut v: Vec<u8> = Vec::new();
    for _ in 0..100_000 {
        let mut outer = vec![0x0a];
        dt_codec::encode::put_varint(&mut outer, v.len() as u64);
        outer.extend_from_slice(&v);
        v = outer;
        if v.len() > 1_000_000 {
            break;
        }
    }
    let m = PbMessage::decode(&Bytes::from(v)).unwrap();
    assert_eq!(m.fields.len(), 1);
    let inner = m.nested(1).unwrap().unwrap();
    assert_eq!(inner.fields.len(), 1);
}
