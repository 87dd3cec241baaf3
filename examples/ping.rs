//! Starts a `NioServer` on a loopback port and a `NioClient` connected to it, in one
//! process, and sends pings: the smallest use of dt's transport.
//!
//! ```text
//! cargo run --example ping -- [--count 5] [--body "hello"]
//! ```
//!
//! Prints each round trip's time, then stops both ends.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use dt_net::{Commands, NioClient, NioClientConfig, NioServer, NioServerConfig, WritePacket};

#[derive(Parser)]
#[command(about = "Ping a dt-net server started in this process")]
struct Args {
    /// Pings to send.
    #[arg(long, default_value_t = 5)]
    count: u32,
    /// Body of each ping (the server echoes it).
    #[arg(long, default_value = "hello")]
    body: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ping: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut server = NioServer::new(NioServerConfig {
        ports: vec![0],
        name: "ping-server".into(),
        ..Default::default()
    });
    server.start()?;
    let addr = *server.local_addrs().first().ok_or("server has no port")?;
    println!("server listening on {addr}");

    let mut client = NioClient::new(NioClientConfig {
        peers: vec![addr],
        name: "ping-client".into(),
        ..Default::default()
    });
    client.start()?;
    if !client.wait_connected(Duration::from_secs(5)) {
        return Err(format!("could not connect to {addr} within 5 s").into());
    }
    for k in 1..=args.count {
        let body = Bytes::copy_from_slice(args.body.as_bytes());
        let t = Instant::now();
        let resp = client.send_request_sync(
            None,
            WritePacket::request_bytes(Commands::CMD_PING, body),
            Duration::from_secs(3),
        )?;
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
