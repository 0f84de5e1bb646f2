//! The `meterhook` binary.

use std::process::ExitCode;

use clap::Parser;
use meterhook::cli::{self, Cli, CliError, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the logger, so that RUST_LOG in .env.local / .env takes effect. doctor reports a
    // broken file among its findings (loading the settings reads the files again).
    if let Err(e) = meterhook::config::load_env_files() {
        if !matches!(cli.command, Some(Command::Doctor(_))) {
            let e = CliError::config(e);
            eprintln!("error: {}", e.line());
            return ExitCode::from(e.code);
        }
    }
    // The service logs at info; the operator's commands only warn, so their output stays clean.
    let default_level = match cli.command {
        None | Some(Command::Serve) => "info",
        Some(_) => "warn",
    };
    // Every line through `Escaped`: a value from a request that holds a line break (an
    // `eventType`, a malformed body's id) stays on its line, whichever log line prints it.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format(|buf, record| {
            use std::io::Write as _;
            let message = record.args().to_string();
            writeln!(
                buf,
                "[{} {:<5} {}] {}",
                buf.timestamp(),
                record.level(),
                record.target(),
                meterhook_smartcar::Escaped(&message)
            )
        })
        .init();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.line());
            ExitCode::from(e.code)
        }
    }
}
