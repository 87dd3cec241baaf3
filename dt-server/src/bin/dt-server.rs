//! `dt-server`: the DtKV server. No argument runs one node with the embedded defaults
//! (replicate port 9331, service port 9332, data under ./data); `-c config.properties
//! -s servers.properties` runs the reference's configuration files. Ctrl-C or SIGTERM
//! stops it cleanly (exit 0); a second Ctrl-C exits at once (a repeated SIGTERM, as
//! some supervisors send, is ignored). The program itself is
//! `dt_server::launcher`; this file adds logging (env_logger, level `info` unless
//! `RUST_LOG` says otherwise) and the signal handler.

use std::sync::mpsc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tx, rx) = mpsc::channel::<()>();
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dt-server: error: cannot install the signal handler: {e}");
            std::process::exit(104);
        }
    };
    std::thread::Builder::new()
        .name("dt-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                if !stopping {
                    stopping = true;
                    log::info!("signal {sig} received: stopping");
                    let _ = tx.send(());
                } else if sig == SIGINT {
                    eprintln!("dt-server: second Ctrl-C: exiting without a clean stop");
                    std::process::exit(130);
                } else {
                    log::info!("signal {sig} received: already stopping");
                }
            }
        })
        .expect("spawn the signal thread");
    std::process::exit(dt_server::launcher::run(&args, rx));
}
