//! Configurations are checked when the dispatcher or pool is built: a typed error naming
//! the field, never a panic in a thread spawn or a value checked later.

use std::time::Duration;

use dt_fiber::{Dispatcher, DispatcherConfig, FiberError, IoPool};

fn refused_field<T: std::fmt::Debug>(r: Result<T, FiberError>) -> &'static str {
    match r {
        Err(FiberError::InvalidConfig { field, reason }) => {
            assert!(!reason.is_empty());
            field
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn dispatcher_names_are_checked_before_the_thread_starts() {
    // A NUL byte made the thread spawn panic; an empty name gave a nameless thread.
    for name in ["bad\0name", ""] {
        let cfg = DispatcherConfig::new(name);
        assert_eq!(refused_field(cfg.validate()), "DispatcherConfig.name");
        assert_eq!(
            refused_field(Dispatcher::start(cfg)),
            "DispatcherConfig.name"
        );
    }
    let e = Dispatcher::start(DispatcherConfig::new("")).unwrap_err();
    assert!(e.to_string().contains("DispatcherConfig.name"), "{e}");
    let ok = DispatcherConfig::new("fine");
    ok.validate().unwrap();
    let d = Dispatcher::start(ok).unwrap();
    assert!(d.stop(Duration::from_secs(10)).stopped);
}

#[test]
fn io_pool_parameters_are_checked_before_any_thread_starts() {
    assert_eq!(refused_field(IoPool::new("io\0pool", 1)), "IoPool name");
    assert_eq!(refused_field(IoPool::new("", 1)), "IoPool name");
    assert_eq!(refused_field(IoPool::new("io", 0)), "IoPool threads");
    let e = IoPool::new("io", 0).unwrap_err();
    assert!(e.to_string().contains("IoPool threads"), "{e}");
    assert!(matches!(
        dt_common::DtError::from(e),
        dt_common::DtError::InvalidArgument(_)
    ));
    IoPool::new("io", 1).unwrap().shutdown();
}

#[cfg(target_os = "linux")]
#[test]
fn a_dispatcher_with_cpus_runs_its_fibers_only_there() {
    use dt_common::cpu_set::CpuSet;
    let allowed = CpuSet::allowed().unwrap();
    let last = allowed.iter().last().unwrap();
    let mut one = CpuSet::new();
    one.insert(last);
    let mut cfg = DispatcherConfig::new("pinned");
    cfg.cpus = Some(one);
    let d = Dispatcher::start(cfg).unwrap();
    let g = d.start_group("g").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    g.fire_fiber("f", move || async move {
        tx.send(CpuSet::allowed().unwrap()).unwrap();
    })
    .unwrap();
    let seen = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(seen, one);
    assert!(d.stop(Duration::from_secs(10)).stopped);
    // the starting thread keeps what it had
    assert_eq!(CpuSet::allowed().unwrap(), allowed);
}

#[cfg(target_os = "linux")]
#[test]
fn dispatcher_cpus_outside_the_process_or_empty_are_refused() {
    use dt_common::cpu_set::CpuSet;
    let allowed = CpuSet::allowed().unwrap();
    if allowed.contains(CpuSet::MAX_CPUS - 1) {
        return; // nothing is outside on a machine with 1 024 CPUs
    }
    let mut outside = CpuSet::new();
    outside.insert(CpuSet::MAX_CPUS - 1);
    let mut cfg = DispatcherConfig::new("d");
    cfg.cpus = Some(outside);
    let e = Dispatcher::start(cfg).unwrap_err().to_string();
    assert!(
        e.contains("DispatcherConfig.cpus")
            && e.contains("CPU 1023 is not available")
            && e.contains(&allowed.to_string()),
        "{e}"
    );
    let mut cfg = DispatcherConfig::new("d");
    cfg.cpus = Some(CpuSet::new());
    assert_eq!(refused_field(cfg.validate()), "DispatcherConfig.cpus");
}
