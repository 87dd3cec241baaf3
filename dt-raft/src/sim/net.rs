//! [`SimNet`]: a fault-injecting network on dt-fiber's virtual clock.
//!
//! Generic over the message type: the harness sends its own message enum from one
//! node id to another, and a delivery callback hands each message that arrives to the
//! receiver (for dt's driver: its inbound API). Faults, all drawn from the network's
//! own seeded generator:
//!
//! * **delay** between [`NetConfig::min_delay_us`] and [`NetConfig::max_delay_us`];
//!   with [`NetConfig::reorder`] off each link is FIFO (one TCP connection),
//!   otherwise messages overtake each other within that bound;
//! * **loss** and **duplicates** (per mille);
//! * **slow links**: extra delay on one direction ([`SimNet::set_slow`]);
//! * **partitions**: one-way ([`SimNet::block`]), symmetric ([`SimNet::partition`]),
//!   a node cut from everybody ([`SimNet::isolate`]); [`SimNet::heal`] lifts them all.
//!   A link is checked when the message is sent and again when it would arrive.
//!
//! Each message in flight is a fiber of the network's group sleeping until its arrival
//! time, so delivery happens on virtual time, in a deterministic order.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use dt_fiber::FiberGroup;

use crate::core::{NodeId, XorShift};

/// Timing and fault knobs of a [`SimNet`].
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Shortest one-way delay (µs).
    pub min_delay_us: u64,
    /// Longest one-way delay (µs), before slow-link extras.
    pub max_delay_us: u64,
    /// Messages lost, per mille.
    pub loss_per_mille: u64,
    /// Messages delivered twice, per mille.
    pub dup_per_mille: u64,
    /// Whether messages of one link may overtake each other.
    pub reorder: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay_us: 100,
            max_delay_us: 2_000,
            loss_per_mille: 0,
            dup_per_mille: 0,
            reorder: false,
        }
    }
}

/// What the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to [`SimNet::send`].
    pub sent: u64,
    /// Delivered (duplicates included).
    pub delivered: u64,
    /// Dropped by loss.
    pub lost: u64,
    /// Dropped by a partition.
    pub blocked: u64,
    /// Extra copies made.
    pub duplicated: u64,
}

type Deliver<M> = Rc<dyn Fn(NodeId, NodeId, M)>;

struct NetState<M> {
    cfg: NetConfig,
    rng: XorShift,
    blocked: BTreeSet<(NodeId, NodeId)>,
    slow: BTreeMap<(NodeId, NodeId), u64>,
    /// Arrival time (ns) of the last message per link (FIFO mode).
    last_at: BTreeMap<(NodeId, NodeId), i64>,
    deliver: Option<Deliver<M>>,
    stats: NetStats,
}

/// A simulated network; cheap to clone (shared). See the [module docs](self).
pub struct SimNet<M> {
    s: Rc<RefCell<NetState<M>>>,
    group: FiberGroup,
}

impl<M> Clone for SimNet<M> {
    fn clone(&self) -> Self {
        SimNet {
            s: self.s.clone(),
            group: self.group.clone(),
        }
    }
}

impl<M: Clone + 'static> SimNet<M> {
    /// A network whose in-flight messages live in `group`, seeded with `seed`.
    pub fn new(group: FiberGroup, cfg: NetConfig, seed: u64) -> Self {
        SimNet {
            s: Rc::new(RefCell::new(NetState {
                cfg,
                rng: XorShift::new(seed),
                blocked: BTreeSet::new(),
                slow: BTreeMap::new(),
                last_at: BTreeMap::new(),
                deliver: None,
                stats: NetStats::default(),
            })),
            group,
        }
    }

    /// Sets the callback that receives every arriving message as `(from, to, msg)`.
    pub fn set_deliver(&self, f: impl Fn(NodeId, NodeId, M) + 'static) {
        self.s.borrow_mut().deliver = Some(Rc::new(f));
    }

    /// Changes the fault knobs.
    pub fn set_config(&self, cfg: NetConfig) {
        self.s.borrow_mut().cfg = cfg;
    }

    /// The current fault knobs.
    pub fn config(&self) -> NetConfig {
        self.s.borrow().cfg.clone()
    }

    /// Sends `msg` from `from` to `to`.
    pub fn send(&self, from: NodeId, to: NodeId, msg: M) {
        self.send_with(from, to, msg, false);
    }

    /// Sends `msg` as on one TCP connection: in order with the link's other ordered
    /// messages and never duplicated, whatever [`NetConfig::reorder`] and
    /// [`NetConfig::dup_per_mille`] say (loss, delay, slow links and partitions
    /// apply). For streams whose protocol relies on the connection's order, like the
    /// chunks of an install snapshot.
    pub fn send_ordered(&self, from: NodeId, to: NodeId, msg: M) {
        self.send_with(from, to, msg, true);
    }

    fn send_with(&self, from: NodeId, to: NodeId, msg: M, ordered: bool) {
        let now = dt_fiber::now().map_or(0, |t| t.nano_time);
        let mut s = self.s.borrow_mut();
        s.stats.sent += 1;
        if s.blocked.contains(&(from, to)) {
            s.stats.blocked += 1;
            return;
        }
        if s.rng.range(0, 999) < s.cfg.loss_per_mille {
            s.stats.lost += 1;
            return;
        }
        let copies = if s.rng.range(0, 999) < s.cfg.dup_per_mille && !ordered {
            s.stats.duplicated += 1;
            2
        } else {
            1
        };
        for c in 0..copies {
            let extra = s.slow.get(&(from, to)).copied().unwrap_or(0);
            let (lo, hi) = (s.cfg.min_delay_us, s.cfg.max_delay_us);
            let d = s.rng.range(lo, hi) + extra;
            let mut at = now + d as i64 * 1000;
            if (!s.cfg.reorder || ordered) && c == 0 {
                let last = s.last_at.entry((from, to)).or_insert(0);
                at = at.max(*last);
                *last = at;
            }
            let me = self.s.clone();
            let m = msg.clone();
            let wait = Duration::from_nanos((at - now) as u64);
            // a stopped network group (end of a run) drops the message
            let _ = self.group.spawn("net", async move {
                if dt_fiber::sleep(wait).await.is_err() {
                    return;
                }
                let f = {
                    let mut s = me.borrow_mut();
                    if s.blocked.contains(&(from, to)) {
                        s.stats.blocked += 1;
                        return;
                    }
                    s.stats.delivered += 1;
                    s.deliver.clone()
                };
                if let Some(f) = f {
                    f(from, to, m);
                }
            });
        }
    }

    /// Blocks the direction `from → to` (one-way partition).
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.s.borrow_mut().blocked.insert((from, to));
    }

    /// Cuts every link between `a` and `b`, both ways.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut s = self.s.borrow_mut();
        for &x in a {
            for &y in b {
                s.blocked.insert((x, y));
                s.blocked.insert((y, x));
            }
        }
    }

    /// Cuts `node` from every node of `all`, both ways.
    pub fn isolate(&self, node: NodeId, all: &[NodeId]) {
        let others: Vec<NodeId> = all.iter().copied().filter(|n| *n != node).collect();
        self.partition(&[node], &others);
    }

    /// Adds `extra_us` of delay on `from → to` (0 removes it).
    pub fn set_slow(&self, from: NodeId, to: NodeId, extra_us: u64) {
        let mut s = self.s.borrow_mut();
        if extra_us == 0 {
            s.slow.remove(&(from, to));
        } else {
            s.slow.insert((from, to), extra_us);
        }
    }

    /// Lifts every partition and slow link.
    pub fn heal(&self) {
        let mut s = self.s.borrow_mut();
        s.blocked.clear();
        s.slow.clear();
    }

    /// Whether `from → to` is blocked now.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.s.borrow().blocked.contains(&(from, to))
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.s.borrow().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dt_fiber::Simulation;

    type Log = Rc<RefCell<Vec<(NodeId, NodeId, u32, u64)>>>;

    fn setup(cfg: NetConfig, seed: u64) -> (Simulation, SimNet<u32>, Log) {
        let mut sim = Simulation::new(seed);
        let g = sim.new_group("net");
        let net = SimNet::new(g, cfg, seed);
        let log: Log = Rc::default();
        let l2 = log.clone();
        net.set_deliver(move |f, t, m| {
            let now = dt_fiber::now().unwrap().nano_time as u64;
            l2.borrow_mut().push((f, t, m, now));
        });
        (sim, net, log)
    }

    fn send_all(sim: &mut Simulation, net: &SimNet<u32>, n: u32) {
        let g = sim.new_group("sender");
        let net = net.clone();
        g.spawn("s", async move {
            for i in 0..n {
                net.send(1, 2, i);
                net.send(2, 1, 1000 + i);
            }
        })
        .unwrap();
        sim.run_for(Duration::from_secs(1));
    }

    #[test]
    fn fifo_links_keep_order_and_delays_stay_in_bounds() {
        let (mut sim, net, log) = setup(NetConfig::default(), 1);
        send_all(&mut sim, &net, 100);
        let v = log.borrow();
        assert_eq!(v.len(), 200);
        let a: Vec<u32> = v.iter().filter(|e| e.0 == 1).map(|e| e.2).collect();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
        let t0 = v.iter().map(|e| e.3).min().unwrap();
        let t1 = v.iter().map(|e| e.3).max().unwrap();
        assert!(t1 - t0 <= 2_000_000, "within the delay bound");
    }

    #[test]
    fn reordering_loss_and_duplicates_happen_and_repeat_with_the_seed() {
        let cfg = NetConfig {
            reorder: true,
            loss_per_mille: 100,
            dup_per_mille: 100,
            ..Default::default()
        };
        let run = |seed| {
            let (mut sim, net, log) = setup(cfg.clone(), seed);
            send_all(&mut sim, &net, 200);
            let v = log.borrow().clone();
            (v, net.stats())
        };
        let (v, st) = run(5);
        assert_eq!(run(5).0, v, "same seed, same deliveries");
        assert!(st.lost > 10 && st.duplicated > 10, "{st:?}");
        let a: Vec<u32> = v.iter().filter(|e| e.0 == 1).map(|e| e.2).collect();
        assert!(a.windows(2).any(|w| w[0] > w[1]), "some overtaking");
        assert_eq!(st.delivered as usize, v.len());
    }

    #[test]
    fn partitions_one_way_and_symmetric_then_heal() {
        let (mut sim, net, log) = setup(NetConfig::default(), 2);
        net.block(1, 2);
        send_all(&mut sim, &net, 10);
        assert!(log.borrow().iter().all(|e| e.0 == 2), "only 2→1 passes");
        log.borrow_mut().clear();
        net.heal();
        net.isolate(2, &[1, 2, 3]);
        assert!(net.is_blocked(2, 3) && net.is_blocked(3, 2) && !net.is_blocked(1, 3));
        send_all(&mut sim, &net, 10);
        assert!(log.borrow().is_empty());
        net.heal();
        net.set_slow(1, 2, 500_000);
        let t = sim.now().nano_time as u64;
        send_all(&mut sim, &net, 1);
        let v = log.borrow();
        let slow = v.iter().find(|e| e.0 == 1).unwrap();
        assert!(slow.3 - t >= 500_000_000, "slow link adds its delay");
    }
}
