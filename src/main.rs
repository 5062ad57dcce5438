//! The `infab` binary: parse, run, print errors with their causes.

use clap::Parser;

fn main() {
    let cli = infab::cli::Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match infab::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("infab: error: {err:#}");
            std::process::exit(1);
        }
    }
}
