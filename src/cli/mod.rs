//! The command line: argument parsing (clap) and exit codes.

mod args;
mod check_args;
mod inspect_cmd;
mod notes;
mod optimize_cmd;
mod passes_cmd;
mod progress;
mod targets_cmd;
mod verify_cmd;

use clap::Parser;

pub use args::{Cli, Command};

use crate::exit;

/// An error that carries its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn input(error: impl Into<anyhow::Error>) -> CliError {
        CliError {
            code: exit::ERROR,
            error: error.into(),
        }
    }
    pub fn usage(error: impl Into<anyhow::Error>) -> CliError {
        CliError {
            code: exit::USAGE,
            error: error.into(),
        }
    }
}

/// Parses the process arguments, runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            e.code
        }
    }
}

pub fn run(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Optimize(a) => optimize_cmd::run(a, cli.quiet),
        Command::Inspect(a) => inspect_cmd::run(a),
        Command::Verify(a) => verify_cmd::run(a, cli.quiet),
        Command::Passes(a) => passes_cmd::run(a),
        Command::Targets(a) => targets_cmd::run(a),
    }
}
