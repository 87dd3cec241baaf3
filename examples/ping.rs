//! Starts a `NioServer` on a loopback port and a `NioClient` connected to it, in one
//! process, and sends pings: the smallest use of dt's transport.
//!
//! ```text
//! cargo run --example ping -- [--count 5] [--body "hello"]
//! ```
//!
//! Prints each round trip's time, then stops both ends. The server listens on
//! 127.0.0.1 only, on a port the system picks. On a failure (no connection, a ping
//! without answer) it prints `ping: <cause>` on stderr and exits with status 1; a bad
//! flag exits with status 2 and clap's message.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use dt_net::{Commands, NioClient, NioClientConfig, NioServer, NioServerConfig, WritePacket};

/// Command-line flags.
#[derive(Parser)]
#[command(name = "ping", about = "Ping a dt-net server started in this process")]
pub struct Args {
    /// Pings to send (1 to 1000000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: u32,
    /// Body of each ping (the server echoes it).
    #[arg(long, default_value = "hello")]
    pub body: String,
}

fn main() -> ExitCode {
    main_with(std::env::args_os())
}

/// The whole program for the given command line (the first item is the program name).
/// Exits the process with status 2 on a bad flag.
pub fn main_with(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = Args::parse_from(argv);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ping: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts both ends, pings `args.count` times, stops both ends.
pub fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut server = NioServer::new(NioServerConfig {
        ports: vec![0],
        bind_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        name: "ping-server".into(),
        ..Default::default()
    });
    server
        .start()
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = *server.local_addrs().first().ok_or("server has no port")?;
    println!("server listening on {addr}");

    let mut client = NioClient::new(NioClientConfig {
        peers: vec![addr],
        name: "ping-client".into(),
        ..Default::default()
    });
    if let Err(e) = client.start() {
        server.stop(Duration::from_secs(1));
        return Err(format!("cannot start the client: {e}").into());
    }
    if !client.wait_connected(Duration::from_secs(5)) {
        client.stop(Duration::from_secs(1));
        server.stop(Duration::from_secs(1));
        return Err(format!("could not connect to {addr} within 5 s").into());
    }
    for k in 1..=args.count {
        let body = Bytes::copy_from_slice(args.body.as_bytes());
        let t = Instant::now();
        let resp = client.send_request_sync(
            None,
            WritePacket::request_bytes(Commands::CMD_PING, body),
            Duration::from_secs(3),
        );
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                client.stop(Duration::from_secs(1));
                server.stop(Duration::from_secs(1));
                return Err(format!("ping {k} failed: {e}").into());
            }
        };
        println!(
            "ping {k}: {} bytes echoed in {} us",
            resp.body.len(),
            t.elapsed().as_micros()
        );
    }
    client.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
    Ok(())
}
