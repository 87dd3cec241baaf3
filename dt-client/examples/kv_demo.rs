//! Runs every DtKV operation, a watch and (blocking, future and callback idioms) against
//! a DtKV cluster — a dt server or the reference's — and prints what it sees.
//!
//! ```text
//! cargo run -p dt-client --example kv_demo -- --servers "1,127.0.0.1:5001" --group 0 --members 1
//! ```
//! Exits non-zero on the first unexpected answer.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dt_client::kv::WatchEvent;
use dt_client::KvClient;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn check(cond: bool, what: &str) {
    if !cond {
        eprintln!("FAILED: {what}");
        std::process::exit(1);
    }
    println!("ok: {what}");
}

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().collect();
    let servers = arg(&args, "--servers", "1,127.0.0.1:5001");
    let group: i32 = arg(&args, "--group", "0").parse().expect("--group");
    let members: Vec<i32> = arg(&args, "--members", "1")
        .split(',')
        .map(|s| s.trim().parse().expect("--members"))
        .collect();
    let prefix = arg(&args, "--prefix", "dtdemo");

    let loop_secs: u64 = arg(&args, "--loop-secs", "0").parse().expect("--loop-secs");
    let watch_secs: u64 = arg(&args, "--watch-loop-secs", "0")
        .parse()
        .expect("--watch-loop-secs");
    let kv = KvClient::connect(&servers, &[(group, &members)]).expect("client");
    if watch_secs > 0 {
        // A writer puts an increasing counter every 100 ms; the watch must see the
        // indexes only grow and end with the last value, whatever happens to the watch
        // server meanwhile (kill it to see the re-sync).
        let key = format!("{prefix}wloop");
        let (tx, rx) = mpsc::channel::<WatchEvent>();
        kv.watch_manager().set_listener(
            move |e| {
                let _ = tx.send(e);
            },
            None,
        );
        kv.watch_manager().add_watch(group, &[&key]).expect("watch");
        let writer = KvClient::connect(&servers, &[(group, &members)]).expect("writer");
        let end = Instant::now() + Duration::from_secs(watch_secs);
        let (mut last_index, mut last_value, mut written, mut failed, mut events) =
            (0i64, String::new(), 0u64, 0u64, 0u64);
        let mut server = None;
        while Instant::now() < end {
            if writer
                .put(group, key.clone(), format!("{}", written + 1))
                .is_ok()
            {
                written += 1
            } else {
                failed += 1
            }
            while let Ok(e) = rx.try_recv() {
                events += 1;
                if e.raft_index <= last_index {
                    check(
                        false,
                        &format!("index went back: {} after {last_index}", e.raft_index),
                    );
                }
                last_index = e.raft_index;
                last_value = String::from_utf8_lossy(&e.value).into_owned();
            }
            let s = kv.watch_manager().watch_server(group);
            if s != server {
                println!(
                    "watch server now {s:?} (written {written}, last event value {last_value})"
                );
                server = s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let t = Instant::now();
        while last_value != written.to_string() && t.elapsed() < Duration::from_secs(10) {
            if let Ok(e) = rx.recv_timeout(Duration::from_millis(200)) {
                events += 1;
                if e.raft_index <= last_index {
                    check(false, "index went back");
                }
                last_index = e.raft_index;
                last_value = String::from_utf8_lossy(&e.value).into_owned();
            }
        }
        println!("watch loop: {written} puts ({failed} failed), {events} events, last value {last_value}");
        check(
            last_value == written.to_string(),
            "the watch ends with the last value written",
        );
        writer.stop(Duration::from_secs(1));
        kv.stop(Duration::from_secs(1));
        return;
    }
    if loop_secs > 0 {
        // Puts every 50 ms; prints leader changes and errors (run a leader transfer
        // meanwhile to see redirects followed).
        let end = Instant::now() + Duration::from_secs(loop_secs);
        let (mut ok, mut err, mut last_leader) = (0u64, 0u64, None);
        while Instant::now() < end {
            match kv.put(group, format!("{prefix}loop"), format!("{ok}")) {
                Ok(_) => ok += 1,
                Err(e) => {
                    err += 1;
                    println!("put failed: {e}");
                }
            }
            let l = kv.raft().leader(group);
            if l != last_leader {
                println!("leader now {l:?} (after {ok} puts)");
                last_leader = l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("loop: {ok} puts ok, {err} failed");
        kv.stop(Duration::from_secs(2));
        std::process::exit(if err == 0 { 0 } else { 2 });
    }
    let t0 = Instant::now();
    let leader = kv
        .raft()
        .fetch_leader(group, Duration::from_secs(10))
        .wait();
    println!("leader of group {group}: {leader:?} ({:?})", t0.elapsed());
    let leader = leader.expect("leader");
    check(members.contains(&leader), "leader is a member");

    // Watches first, so the puts below show up as events.
    let (tx, rx) = mpsc::channel::<WatchEvent>();
    kv.watch_manager().set_listener(
        move |e| {
            let _ = tx.send(e);
        },
        None,
    );
    let wkey = format!("{prefix}.watched");
    kv.remove(group, wkey.clone()).expect("clean watched");
    kv.watch_manager()
        .add_watch(group, &[&wkey])
        .expect("add watch");

    let dir = prefix.clone();
    kv.mkdir(group, dir.clone()).expect("mkdir");
    let k1 = format!("{dir}.k1");
    let idx = kv.put(group, k1.clone(), "v1").expect("put");
    println!("put {k1} at raft index {idx}");
    let n = kv.get(group, k1.clone()).expect("get").expect("node");
    check(&n.data[..] == b"v1", "get returns the put value");
    check(
        kv.get(group, format!("{dir}.absent"))
            .expect("get absent")
            .is_none(),
        "absent key is None",
    );

    // Future idiom, awaited by a tiny executor-less poll (wait) and callback idiom.
    let f = kv.put_async(group, format!("{dir}.k2"), "v2");
    check(f.wait().expect("put_async") > idx, "put_async index grows");
    let (ctx, crx) = mpsc::channel();
    kv.get_cb(group, format!("{dir}.k2"), move |r| {
        let _ = ctx.send(r);
    });
    let r = crx
        .recv_timeout(Duration::from_secs(10))
        .expect("cb")
        .expect("get_cb");
    check(
        r.map(|n| n.data) == Some(Bytes::from_static(b"v2")),
        "get_cb sees v2",
    );

    let children = kv.list(group, dir.clone()).expect("list");
    let names: Vec<String> = children
        .iter()
        .map(|c| String::from_utf8_lossy(&c.key_in_dir).into_owned())
        .collect();
    println!("list {dir}: {names:?}");
    check(
        names.contains(&"k1".to_string()) && names.contains(&"k2".to_string()),
        "list has k1 and k2",
    );

    let keys: Vec<Bytes> = (0..3).map(|i| Bytes::from(format!("{dir}.b{i}"))).collect();
    let vals: Vec<Bytes> = (0..3).map(|i| Bytes::from(format!("bv{i}"))).collect();
    let done = kv
        .batch_put(group, keys.clone(), vals.clone())
        .expect("batch_put");
    check(done.all_succeeded(), "batch_put wrote every key");
    let got = kv.batch_get(group, keys.clone()).expect("batch_get");
    check(
        got.iter()
            .zip(&vals)
            .all(|(n, v)| n.as_ref().map(|n| &n.data) == Some(v)),
        "batch_get returns batch_put values",
    );
    let removed = kv.batch_remove(group, keys.clone()).expect("batch_remove");
    check(removed.all_succeeded(), "batch_remove removed every key");
    check(
        kv.batch_get(group, keys)
            .expect("batch_get")
            .iter()
            .all(Option::is_none),
        "batch_remove removed all",
    );

    check(
        kv.compare_and_set(group, k1.clone(), "v1", "v1b")
            .expect("cas"),
        "cas with right expect",
    );
    check(
        !kv.compare_and_set(group, k1.clone(), "wrong", "v1c")
            .expect("cas"),
        "cas with wrong expect fails",
    );

    let tkey = format!("{dir}.temp");
    kv.put_temp(group, tkey.clone(), "t", 60_000)
        .expect("put_temp");
    kv.update_ttl(group, tkey.clone(), 120_000)
        .expect("update_ttl");
    check(
        kv.get(group, tkey.clone()).expect("get temp").is_some(),
        "temp node exists",
    );
    let tdir = format!("{prefix}tmpdir");
    kv.make_temp_dir(group, tdir.clone(), 1_000)
        .expect("make_temp_dir");
    kv.put(group, format!("{tdir}.x"), "y")
        .expect("put under temp dir");
    let end = Instant::now() + Duration::from_secs(15);
    while kv.get(group, tdir.clone()).expect("get temp dir").is_some() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    check(
        kv.get(group, tdir.clone()).expect("get").is_none(),
        "temp dir expired with its content",
    );

    match kv.put(group, "bad..key", "v") {
        Err(dt_client::kv::KvError::InvalidArgument(m)) => {
            println!("ok: bad key refused locally: {m}")
        }
        other => check(false, &format!("bad key: {other:?}")),
    }

    kv.put(group, wkey.clone(), "w1").expect("put watched");
    kv.put(group, wkey.clone(), "w2").expect("put watched");
    let mut last = None;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(e) => {
                println!(
                    "watch event: key {} index {} state {} value {:?}",
                    String::from_utf8_lossy(&e.key),
                    e.raft_index,
                    e.state,
                    String::from_utf8_lossy(&e.value)
                );
                let done = &e.value[..] == b"w2";
                last = Some(e);
                if done {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    check(
        last.is_some_and(|e| &e.value[..] == b"w2"),
        "watch delivered the latest value",
    );

    // Locks: client A holds, client B waits and gets the lock by push when A unlocks.
    let kv_b = KvClient::connect(&servers, &[(group, &members)]).expect("client B");
    let lkey = format!("{prefix}lock");
    let la = kv.create_lock(group, lkey.clone()).expect("lock A");
    let lb = kv_b.create_lock(group, lkey.clone()).expect("lock B");
    check(
        la.try_lock(30_000, 0).expect("A try_lock"),
        "A takes the free lock",
    );
    let ta = la.fencing_token();
    println!(
        "A fencing token {ta:?}, lease rest {} ms",
        la.lease_rest_millis()
    );
    check(
        !lb.try_lock(30_000, 0).expect("B try_lock no wait"),
        "B can't take a held lock without waiting",
    );
    let fb = lb.try_lock_async(30_000, 10_000);
    std::thread::sleep(Duration::from_millis(300));
    check(!fb.is_done(), "B is waiting");
    la.update_lease(20_000).expect("A update_lease");
    let t = Instant::now();
    la.unlock().expect("A unlock");
    check(
        fb.wait().expect("B try_lock wait"),
        "B gets the lock after A unlocks",
    );
    println!("B got the lock {:?} after A's unlock", t.elapsed());
    check(
        lb.is_held_by_current_client() && !la.is_held_by_current_client(),
        "only B holds it",
    );
    std::thread::sleep(Duration::from_millis(300));
    let tb = lb.fencing_token();
    println!("B fencing token {tb:?}");
    check(
        matches!((ta, tb), (Some(a), Some(b)) if b > a),
        "fencing token grows with the holder",
    );
    drop(lb); // closing a held lock unlocks it
    std::thread::sleep(Duration::from_millis(300));
    check(
        la.try_lock(5_000, 0).expect("A again"),
        "A takes it again after B closed its lock",
    );
    la.unlock().expect("unlock");
    drop(la);

    // Auto-renewing locks: A keeps it past several leases; B gets it when A drops its.
    let akey = format!("{prefix}auto");
    let (atx, arx) = mpsc::channel::<(char, bool)>();
    let t1 = atx.clone();
    let aa = kv
        .create_auto_renewal_lock(group, akey.clone(), 1_000, move |h| {
            let _ = t1.send(('A', h));
        })
        .expect("auto A");
    check(
        arx.recv_timeout(Duration::from_secs(5)).ok() == Some(('A', true)),
        "A's auto lock acquired",
    );
    let t2 = atx.clone();
    let ab = kv_b
        .create_auto_renewal_lock(group, akey.clone(), 1_000, move |h| {
            let _ = t2.send(('B', h));
        })
        .expect("auto B");
    std::thread::sleep(Duration::from_millis(3_000));
    check(
        aa.is_held_by_current_client() && !ab.is_held_by_current_client(),
        "A still holds after 3 leases (renewed), B waits",
    );
    check(arx.try_recv().is_err(), "no loss reported meanwhile");
    let t = Instant::now();
    drop(aa);
    let mut got_b = false;
    while let Ok(ev) = arx.recv_timeout(Duration::from_secs(5)) {
        println!("auto lock event {ev:?} after {:?}", t.elapsed());
        if ev == ('B', true) {
            got_b = true;
            break;
        }
    }
    check(
        got_b && ab.is_held_by_current_client(),
        "B's auto lock takes over when A's is dropped",
    );
    drop(ab);
    kv_b.stop(Duration::from_secs(2));

    for k in [k1, format!("{dir}.k2"), tkey, wkey] {
        kv.remove(group, k).expect("remove");
    }
    kv.remove(group, dir).expect("remove dir");
    kv.stop(Duration::from_secs(2));
    println!("kv_demo finished in {:?}", t0.elapsed());
}
