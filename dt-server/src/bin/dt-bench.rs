//! `dt-bench`: benchmarks a DtKV group (`dt-bench -s client.properties -g 0 [options]`);
//! see `dt_server::bench_cli` and `docs/` for the options and output.

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    std::process::exit(dt_server::bench_cli::run_cli(std::env::args_os()));
}
