//! Settings that cannot work are refused by `start` with an error naming the field,
//! never accepted silently, patched up later, or a panic.

use std::time::Duration;

use dt_net::*;

fn server_err(cfg: NioServerConfig) -> String {
    let mut s = NioServer::new(cfg);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.start()));
    match r {
        Ok(Ok(())) => panic!("started"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => panic!("start panicked"),
    }
}

fn client_err(cfg: NioClientConfig) -> String {
    let mut c = NioClient::new(cfg);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.start()));
    match r {
        Ok(Ok(())) => panic!("started"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => panic!("start panicked"),
    }
}

#[test]
fn bad_server_settings_are_refused_with_the_field_named() {
    let d = NioServerConfig::default;
    let cases: Vec<(&str, NioServerConfig)> = vec![
        (
            "io_threads",
            NioServerConfig {
                io_threads: 0,
                ..d()
            },
        ),
        (
            "ports",
            NioServerConfig {
                ports: vec![],
                ..d()
            },
        ),
        (
            "max_packet_size",
            NioServerConfig {
                max_packet_size: 0,
                ..d()
            },
        ),
        (
            "max_packet_size",
            NioServerConfig {
                max_packet_size: 1 << 31,
                ..d()
            },
        ),
        (
            "max_body_size",
            NioServerConfig {
                max_body_size: 0,
                ..d()
            },
        ),
        (
            "max_body_size",
            NioServerConfig {
                max_body_size: 6 << 20,
                max_packet_size: 5 << 20,
                ..d()
            },
        ),
        (
            "max_in_requests",
            NioServerConfig {
                max_in_requests: -1,
                ..d()
            },
        ),
        (
            "max_in_bytes",
            NioServerConfig {
                max_in_bytes: -5,
                ..d()
            },
        ),
        (
            "handshake_timeout",
            NioServerConfig {
                handshake_timeout: Duration::ZERO,
                ..d()
            },
        ),
        (
            "write_high_water",
            NioServerConfig {
                write_high_water: 0,
                ..d()
            },
        ),
        (
            "max_read_buffer_bytes",
            NioServerConfig {
                io_threads: 4,
                max_read_buffer_bytes: 16 << 20,
                ..d()
            },
        ),
        (
            "max_write_buffer_bytes",
            NioServerConfig {
                max_write_buffer_bytes: 0,
                ..d()
            },
        ),
        (
            "name",
            NioServerConfig {
                name: "a\0b".into(),
                ..d()
            },
        ),
    ];
    for (field, cfg) in cases {
        let e = server_err(cfg);
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn bad_client_settings_are_refused_with_the_field_named() {
    let d = NioClientConfig::default;
    let cases: Vec<(&str, NioClientConfig)> = vec![
        (
            "max_packet_size",
            NioClientConfig {
                max_packet_size: 0,
                ..d()
            },
        ),
        (
            "max_body_size",
            NioClientConfig {
                max_body_size: 2 << 20,
                max_packet_size: 1 << 20,
                ..d()
            },
        ),
        (
            "max_out_requests",
            NioClientConfig {
                max_out_requests: -1,
                ..d()
            },
        ),
        (
            "max_out_bytes",
            NioClientConfig {
                max_out_bytes: -1,
                ..d()
            },
        ),
        (
            "max_in_requests",
            NioClientConfig {
                max_in_requests: -1,
                ..d()
            },
        ),
        (
            "max_in_bytes",
            NioClientConfig {
                max_in_bytes: -1,
                ..d()
            },
        ),
        (
            "connect_timeout",
            NioClientConfig {
                connect_timeout: Duration::ZERO,
                ..d()
            },
        ),
        (
            "write_high_water",
            NioClientConfig {
                write_high_water: 0,
                ..d()
            },
        ),
        (
            "name",
            NioClientConfig {
                name: "x\0".into(),
                ..d()
            },
        ),
    ];
    for (field, cfg) in cases {
        let e = client_err(cfg);
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn defaults_are_valid() {
    NioServerConfig::default().validate().unwrap();
    NioClientConfig::default().validate().unwrap();
}
