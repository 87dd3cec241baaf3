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
