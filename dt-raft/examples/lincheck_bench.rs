//! Time of the linearizability checker on generated histories.
//!
//! ```text
//! cargo run --release -p dt-raft --example lincheck_bench
//! ```
//!
//! For each shape (operations, processes, keys), generates linearizable histories with
//! [`dt_raft::sim::gen`] (5% unknown outcomes, 10% failures) and prints
//! `RESULT ops=<n> processes=<p> keys=<k> ms=<median check time> steps=<search steps>`.

use std::time::Instant;

use dt_raft::sim::gen::{random_history, GenConfig};
use dt_raft::sim::lincheck::{check_events, CheckConfig, Verdict};

fn main() {
    for (operations, processes, keys) in [(1000, 5, 5), (3000, 5, 5), (3000, 10, 5), (10000, 10, 5)]
    {
        let cfg = GenConfig {
            operations,
            processes,
            keys,
            ..GenConfig::default()
        };
        let mut times = Vec::new();
        let mut steps = 0;
        for seed in 0..11 {
            let h = random_history(seed, &cfg);
            let start = Instant::now();
            let r = check_events(&h, &CheckConfig::default()).expect("generated history pairs up");
            times.push(start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(r.verdict, Verdict::Linearizable, "seed {seed}");
            steps = r.steps;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "RESULT ops={operations} processes={processes} keys={keys} ms={:.2} steps={steps}",
            times[times.len() / 2]
        );
    }
}
