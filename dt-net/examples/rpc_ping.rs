//! Connects to a server (ours or the reference's), completes the handshake and pings it
//! with bodies of the given sizes, checking the echo byte for byte.
//!
//! ```text
//! cargo run --release -p dt-net --example rpc_ping -- --addr 127.0.0.1:9000 --sizes 0,128,1048576
//! ```

use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use dt_net::{Commands, NioClient, NioClientConfig, WritePacket};

#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: std::net::SocketAddr,
    /// Body sizes to ping with, comma separated.
    #[arg(long, default_value = "0,128,1048576", value_delimiter = ',')]
    sizes: Vec<usize>,
}

fn main() {
    let _ = env_logger::try_init();
    let a = Args::parse();
    let mut c = NioClient::new(NioClientConfig {
        peers: vec![a.addr],
        ..Default::default()
    });
    c.start().expect("start client");
    if !c.wait_connected(Duration::from_secs(5)) {
        println!("HANDSHAKE FAILED with {}", a.addr);
        std::process::exit(1);
    }
    println!("handshake OK with {}", a.addr);
    let mut fails = 0;
    for size in a.sizes {
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
    std::process::exit(if fails == 0 { 0 } else { 1 });
}
