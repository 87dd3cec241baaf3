//! AFL++ target: every input is checked by `dt_codec::fuzz::check_input`, its first byte
//! choosing the split point.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let split = data.first().copied().unwrap_or(0) as usize;
        dt_codec::fuzz::check_input(data, split);
    });
}
