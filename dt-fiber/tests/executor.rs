//! The two `dt_common::Executor`s of dt-fiber: a fiber group's (`GroupExecutor`) and the
//! blocking-IO pool's.

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use dt_common::{Executor, Task};
use dt_fiber::{Dispatcher, DispatcherConfig, IoPool};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn group_executor_runs_tasks_on_the_dispatcher_in_order_per_thread() {
    let d = Dispatcher::start(DispatcherConfig::new("exec-d1")).unwrap();
    let g = d.start_group("exec-g1").unwrap();
    let exec: Arc<dyn Executor> = Arc::new(g.executor());
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    let (tx, rx) = mpsc::channel::<(usize, usize, String, String)>();
    let start = Arc::new(Barrier::new(THREADS));
    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let (exec, tx, start) = (exec.clone(), tx.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    let tx = tx.clone();
                    let task: Task = Box::new(move || {
                        let thread = std::thread::current().name().unwrap_or("").to_string();
                        let group = dt_fiber::current_group().unwrap().name().to_string();
                        tx.send((t, i, thread, group)).unwrap();
                    });
                    assert!(exec.execute(task).is_ok());
                }
            })
        })
        .collect();
    drop(tx);
    for s in submitters {
        s.join().unwrap();
    }
    let mut next = [0usize; THREADS];
    for _ in 0..THREADS * PER_THREAD {
        let (t, i, thread, group) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(thread, "exec-d1", "runs on the dispatcher thread");
        assert_eq!(group, "exec-g1", "runs inside the group");
        assert_eq!(i, next[t], "thread {t}'s tasks out of order");
        next[t] += 1;
    }
    assert!(d.stop(WAIT).stopped);
}

#[test]
fn group_executor_task_can_spawn_fibers_into_the_group() {
    let d = Dispatcher::start(DispatcherConfig::new("exec-d2")).unwrap();
    let g = d.start_group("exec-g2").unwrap();
    let exec = g.executor();
    let (tx, rx) = mpsc::channel();
    let task: Task = Box::new(move || {
        let group = dt_fiber::current_group().unwrap();
        let chan = group.new_channel::<u32>();
        let c2 = chan.clone();
        group
            .spawn("consumer", async move {
                let v = c2.take().await.unwrap();
                let name = dt_fiber::current_group().unwrap().name().to_string();
                tx.send((v, name)).unwrap();
            })
            .unwrap();
        group
            .spawn("producer", async move {
                dt_fiber::sleep(Duration::from_millis(1)).await.unwrap();
                chan.offer(41 + 1);
            })
            .unwrap();
    });
    assert!(exec.execute(task).is_ok());
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), (42, "exec-g2".to_string()));
    assert!(d.stop(WAIT).stopped);
}

/// A task handed back by `execute` is the caller's again: it can still be run.
fn refused(exec: &dyn Executor) -> bool {
    let (tx, rx) = mpsc::channel();
    match exec.execute(Box::new(move || tx.send(()).unwrap())) {
        Ok(()) => false,
        Err(task) => {
            task();
            rx.try_recv().is_ok()
        }
    }
}

#[test]
fn group_executor_refuses_after_shutdown() {
    let d = Dispatcher::start(DispatcherConfig::new("exec-d3")).unwrap();
    let g = d.start_group("exec-g3").unwrap();
    let other = d.start_group("exec-g3b").unwrap();
    let exec = g.executor();
    let other_exec = other.executor();
    assert!(!exec.is_closed());
    // Group shutdown requested: refused at once, even before the group finishes.
    g.request_shutdown().unwrap();
    assert!(exec.is_closed());
    assert!(refused(&exec));
    assert!(g.wait_finished(WAIT));
    assert!(refused(&exec));
    // The other group still takes work until the dispatcher stops.
    let (tx, rx) = mpsc::channel();
    assert!(other_exec
        .execute(Box::new(move || tx.send(1).unwrap()))
        .is_ok());
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 1);
    assert!(d.stop(WAIT).stopped);
    assert!(other_exec.is_closed());
    assert!(refused(&other_exec));
}

#[test]
fn group_executor_drops_tasks_its_group_can_no_longer_run() {
    // A task accepted but not run (the group finishes first) is dropped, releasing what
    // it captured: the waiter sees a disconnect instead of hanging.
    let d = Dispatcher::start(DispatcherConfig::new("exec-d4")).unwrap();
    let g = d.start_group("exec-g4").unwrap();
    let exec = g.executor();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    // Block the dispatcher inside a task, queue a second task, finish the group.
    let (entered_tx, entered_rx) = mpsc::channel();
    let blocker: Task = Box::new(move || {
        entered_tx.send(()).unwrap();
        let _ = gate_rx.recv_timeout(WAIT);
        dt_fiber::current_group().unwrap().request_shutdown();
    });
    assert!(exec.execute(blocker).is_ok());
    entered_rx.recv_timeout(WAIT).unwrap();
    let (tx, rx) = mpsc::channel::<u32>();
    assert!(exec.execute(Box::new(move || tx.send(1).unwrap())).is_ok());
    gate_tx.send(()).unwrap();
    // The second task arrived while the first ran; the group finished at the end of that
    // round, so the second is dropped, never run outside its group.
    assert_eq!(
        rx.recv_timeout(WAIT),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
    assert!(g.wait_finished(WAIT));
    assert!(d.stop(WAIT).stopped);
}

#[test]
fn io_pool_executor_runs_tasks_and_refuses_after_shutdown() {
    let pool = IoPool::new("exec-io", 2).unwrap();
    let (tx, rx) = mpsc::channel();
    let task: Task = Box::new(move || {
        let name = std::thread::current().name().unwrap_or("").to_string();
        tx.send(name).unwrap();
    });
    assert!(Executor::execute(&pool, task).is_ok());
    assert!(rx.recv_timeout(WAIT).unwrap().starts_with("exec-io-"));
    // A panicking task is contained; the pool keeps working.
    assert!(Executor::execute(&pool, Box::new(|| panic!("disk on fire"))).is_ok());
    let (tx, rx) = mpsc::channel();
    assert!(Executor::execute(&pool, Box::new(move || tx.send(2).unwrap())).is_ok());
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 2);
    pool.shutdown();
    assert!(refused(&pool));
}
