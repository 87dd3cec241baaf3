//! Same seed, same history: a multi-group scenario replayed under the simulation.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use dt_fiber::{random_u64, sleep, FiberCondition, FiberOptions, Simulation};

fn scenario(seed: u64) -> Vec<String> {
    let mut sim = Simulation::new(seed);
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let nodes: Vec<_> = (0..3).map(|i| sim.new_group(&format!("node{i}"))).collect();
    let inboxes: Vec<_> = nodes
        .iter()
        .map(|g| g.new_channel::<(usize, u64)>())
        .collect();
    let tick = FiberCondition::new("tick");
    for (i, g) in nodes.iter().enumerate() {
        // A receiver per node, logging each message with the virtual time.
        {
            let (log, inbox) = (log.clone(), inboxes[i].clone());
            g.spawn_with(FiberOptions::new("rx").daemon(), async move {
                while let Ok((from, v)) = inbox.take().await {
                    let t = dt_fiber::now().unwrap().nano_time;
                    log.borrow_mut()
                        .push(format!("t={t} node{i} <- node{from}: {v}"));
                }
            })
            .unwrap();
        }
        // Senders that sleep a random time, then message a random peer.
        for s in 0..2 {
            let (log, inboxes, tick) = (log.clone(), inboxes.clone(), tick.clone());
            g.spawn(format!("tx{s}"), async move {
                for _ in 0..20 {
                    let r = random_u64().unwrap();
                    sleep(Duration::from_micros(r % 5_000)).await.unwrap();
                    let to = (r >> 32) as usize % inboxes.len();
                    inboxes[to].offer((i, r % 1000));
                    if r.is_multiple_of(7) {
                        tick.signal_all();
                    }
                }
                log.borrow_mut().push(format!("node{i} tx{s} done"));
            })
            .unwrap();
        }
        {
            let (log, tick) = (log.clone(), tick.clone());
            g.spawn_with(FiberOptions::new("ticker").daemon(), async move {
                loop {
                    let signalled = tick.wait_timeout(Duration::from_millis(3)).await.unwrap();
                    let t = dt_fiber::now().unwrap().nano_time;
                    log.borrow_mut()
                        .push(format!("t={t} node{i} tick {signalled}"));
                }
            })
            .unwrap();
        }
    }
    for g in &nodes {
        g.request_shutdown();
    }
    assert!(sim.stop(Duration::from_secs(60)));
    assert_eq!(sim.group_count(), 0);
    let out = log.borrow().clone();
    out
}

#[test]
fn same_seed_same_event_log() {
    let a = scenario(12345);
    let b = scenario(12345);
    assert!(a.len() > 100, "scenario too small: {}", a.len());
    assert_eq!(a, b);
    let c = scenario(999);
    assert_ne!(a, c, "a different seed should give a different history");
}
