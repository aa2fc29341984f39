//! The command line: argument parsing (clap) and exit codes.

mod args;
mod check_args;
mod inspect_cmd;
mod notes;
mod optimize_cmd;
pub mod optimize_job;
mod passes_cmd;
mod progress;
mod targets_cmd;
mod verify_cmd;

use clap::Parser;

pub use args::{CheckArgs, Cli, Command, InspectArgs, OptimizeArgs, VerifyArgs};
pub use passes_cmd::passes_json;
pub use targets_cmd::targets_json;

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
    run_argv(std::env::args_os())
}

/// The whole command line on `argv` (`argv[0]` is the program's name):
/// parses it, runs the command, prints what the command prints, and
/// returns the exit code. `npuopt` and the Python package's
/// `python -m npuopt` both end here.
pub fn run_argv<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(argv) {
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
