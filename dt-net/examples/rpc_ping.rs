//! Connects to a server (ours or the reference's), completes the handshake and pings it
//! with bodies of the given sizes, checking the echo byte for byte.
//!
//! ```text
//! cargo run --release -p dt-net --example rpc_ping -- --addr 127.0.0.1:9000 --sizes 0,128,1048576
//! ```
//!
//! Exits with status 0 when every echo matched, 1 otherwise (including when it cannot
//! connect), 2 on a bad flag.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use dt_net::{Commands, NioClient, NioClientConfig, WritePacket};

#[derive(Parser)]
#[command(
    name = "rpc_ping",
    about = "Handshake with a server and check ping echoes of the given body sizes"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: std::net::SocketAddr,
    /// Body sizes to ping with, comma separated (each at most 4 MiB).
    #[arg(long, default_value = "0,128,1048576", value_delimiter = ',',
          value_parser = clap::value_parser!(u64).range(0..=4 << 20))]
    sizes: Vec<u64>,
}

fn main() -> ExitCode {
    let _ = env_logger::try_init();
    let a = Args::parse();
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![a.addr],
        ..Default::default()
    });
    if let Err(e) = c.start() {
        eprintln!("rpc_ping: cannot start the client: {e}");
        return ExitCode::FAILURE;
    }
    if !c.wait_connected(Duration::from_secs(5)) {
        println!("HANDSHAKE FAILED with {}", a.addr);
        eprintln!(
            "rpc_ping: no handshake with {} within 5 s (is a server listening there?)",
            a.addr
        );
        c.stop(Duration::from_secs(1));
        return ExitCode::FAILURE;
    }
    println!("handshake OK with {}", a.addr);
    let mut fails = 0;
    for size in a.sizes {
        let size = size as usize;
        let body: Bytes = (0..size)
            .map(|i| (i * 131 + size) as u8)
            .collect::<Vec<_>>()
            .into();
        let r = c.send_request_sync(
            None,
            WritePacket::request_bytes(Commands::CMD_PING, body.clone()),
            Duration::from_secs(5),
        );
        match r {
            Ok(p) if p.body == body => println!("ping body={size} echo OK"),
            Ok(p) => {
                fails += 1;
                println!("ping body={size} MISMATCH (got {} bytes)", p.body.len())
            }
            Err(e) => {
                fails += 1;
                println!("ping body={size} FAILED: {e}")
            }
        }
    }
    c.stop(Duration::from_secs(1));
    println!("{}", if fails == 0 { "PING OK" } else { "PING FAILED" });
    if fails == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
