//! `StateMachine::prepare`: a group on a Dispatcher thread with the real log hints
//! each normal entry to its state machine a few entries before executing it, in index
//! order, and what the state machine computes does not change.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dt_fiber::{Dispatcher, DispatcherConfig};
use dt_raft::core::Role;
use dt_raft::driver::local::{AppliedLog, CounterSm, LocalNetwork};
use dt_raft::driver::{RaftGroup, RaftGroupConfig};
use dt_raft::raft_log::{Executor, ThreadPoolIo};
use dt_raft::sm::{
    DefaultRaftFactory, Exec, ExecEntry, RaftInput, SmFuture, Snapshot, SnapshotChunk,
    SnapshotInfo, StateMachine,
};

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Prepare(u64),
    Exec(u64),
}

/// The counter, recording the hints and executions it sees.
struct Hinted {
    inner: CounterSm,
    events: Arc<Mutex<Vec<Event>>>,
}

impl StateMachine for Hinted {
    type Output = i64;

    fn exec(&mut self, e: &ExecEntry<'_>) -> Exec<i64> {
        self.events.lock().unwrap().push(Event::Exec(e.index));
        self.inner.exec(e)
    }

    fn prepare(&mut self, e: &ExecEntry<'_>) {
        self.events.lock().unwrap().push(Event::Prepare(e.index));
    }

    fn take_snapshot(&mut self, info: &SnapshotInfo) -> SmFuture<'static, Box<dyn Snapshot>> {
        self.inner.take_snapshot(info)
    }

    fn install_snapshot(&mut self, chunk: SnapshotChunk<'_>) -> SmFuture<'static, ()> {
        self.inner.install_snapshot(chunk)
    }
}

#[test]
fn entries_are_hinted_ahead_of_execution_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let applied = AppliedLog::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let io: Arc<dyn Executor> = ThreadPoolIo::new(2);
    let (a, ev) = (applied.clone(), events.clone());
    let factory = Arc::new(DefaultRaftFactory::new(
        io,
        move |_cfg: &RaftGroupConfig| {
            Ok(Hinted {
                inner: CounterSm::recording(a.clone()),
                events: ev.clone(),
            })
        },
    ));
    let mut cfg = RaftGroupConfig::new(1, 1, vec![1]);
    cfg.data_dir = tmp.path().join("node1");
    cfg.elect_timeout_ms = 1000;
    cfg.heartbeat_interval_ms = 200;
    let d = Dispatcher::start(DispatcherConfig::new("node1")).unwrap();
    let h = d.start_group("group1").unwrap();
    let net = LocalNetwork::new();
    let transport_net = net.clone();
    let group = RaftGroup::start(&h, factory, cfg, move || transport_net.transport(1)).unwrap();
    net.register(1, &group);
    let end = Instant::now() + WAIT;
    while !(group.status().role == Role::Leader && group.status().group_ready) {
        assert!(Instant::now() < end, "no leader");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Submitted together, so that they commit (and execute) in runs of several.
    const WRITES: i64 = 2000;
    let futs: Vec<_> = (1..=WRITES)
        .map(|v| group.submit_async(RaftInput::new(0, v.to_string())))
        .collect();
    let mut total = 0;
    for f in futs {
        total = f.wait(WAIT).expect("write failed").1;
    }
    assert_eq!(
        total,
        WRITES * (WRITES + 1) / 2,
        "the hints changed no result"
    );

    let events = events.lock().unwrap().clone();
    let (mut prepares, mut execs) = (Vec::new(), Vec::new());
    for e in &events {
        match *e {
            Event::Prepare(i) => prepares.push(i),
            Event::Exec(i) => execs.push(i),
        }
    }
    assert_eq!(execs.len(), WRITES as usize);
    assert!(
        prepares.windows(2).all(|w| w[0] < w[1]),
        "hints in index order, once each"
    );
    // Each hint comes before its execution, at most four executions ahead.
    let mut ahead_seen = 0;
    for (at, e) in events.iter().enumerate() {
        let Event::Prepare(i) = *e else { continue };
        let later = &events[at + 1..];
        let pos = later
            .iter()
            .position(|x| *x == Event::Exec(i))
            .unwrap_or_else(|| panic!("entry {i} hinted after its execution"));
        let between = later[..pos]
            .iter()
            .filter(|x| matches!(x, Event::Exec(_)))
            .count();
        assert!(between <= 4, "entry {i} hinted {between} executions ahead");
        ahead_seen = ahead_seen.max(between);
    }
    assert_eq!(
        ahead_seen, 4,
        "runs of entries are hinted four entries ahead"
    );
    assert_eq!(prepares, execs, "every normal entry is hinted");

    group.shutdown();
    assert!(group.wait_stopped(WAIT));
    assert!(d.stop(WAIT).stopped);
}
