//! `dt-admin`: the admin command-line tool of a dt cluster (the reference's
//! `dongting-admin.sh`). Everything is in [`dt_server::admin_cli`]; this only wires
//! the process's arguments, streams, logging and exit code.
//!
//! ```text
//! dt-admin -s conf/servers.properties list-nodes --node-id 1
//! dt-admin -s conf/servers.properties query-status --node-id 1 --group-id 0 --json
//! dt-admin <subcommand> --help
//! ```

fn main() {
    // Client warnings (connection failures and the like) only when RUST_LOG asks.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .try_init();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = dt_server::admin_cli::main_with(
        std::env::args_os(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    );
    std::process::exit(code);
}
