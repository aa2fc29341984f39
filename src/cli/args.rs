//! Every command and flag, with the help text users see.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  bad input (unreadable or invalid model, bad option value) or internal error
  2  usage error (unknown command, flag or pass name)
  3  verification failed: the optimized model does not match the input";

#[derive(Debug, Parser)]
#[command(
    name = "npuopt",
    version,
    about = "Optimize ONNX models for NPUs: exact rewrites, verified with tract",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// No progress messages on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rewrite a model and write the result.
    #[command(after_help = concat!(
        "Examples:\n",
        "  npuopt optimize model.onnx -o model.opt.onnx --passes none --no-verify\n",
        "  npuopt optimize model.onnx -o out.onnx --external-data\n\n",
        "Exit codes:\n  0 ok, 1 bad input or internal error, 2 usage error, 3 verification failed"
    ))]
    Optimize(OptimizeArgs),
    /// Summarize a model: producer, opsets, inputs and outputs, ops, parameters, MACs.
    #[command(
        after_help = "Examples:\n  npuopt inspect model.onnx\n  npuopt inspect model.onnx --json"
    )]
    Inspect(InspectArgs),
    /// List the rewrite passes.
    #[command(after_help = "Examples:\n  npuopt passes\n  npuopt passes --json")]
    Passes(PassesArgs),
}

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// The model to optimize.
    pub input: PathBuf,
    /// Where to write the optimized model (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Comma-separated passes to run in order, or `none`. Default: the default pipeline.
    #[arg(long)]
    pub passes: Option<String>,
    /// Comma-separated passes to leave out of the pipeline.
    #[arg(long)]
    pub skip: Option<String>,
    /// Do not check the output against the input with tract.
    #[arg(long)]
    pub no_verify: bool,
    /// Allow the output to overwrite the input file.
    #[arg(long)]
    pub force: bool,
    /// Write tensors of 1 KiB or more to `<output>.data` beside the model.
    #[arg(long)]
    pub external_data: bool,
    /// Also write the IR text dump of the result here (for reviews and diffs).
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    pub input: PathBuf,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the IR text dump instead of the summary.
    #[arg(long, conflicts_with = "json")]
    pub dump: bool,
}

#[derive(Debug, Args)]
pub struct PassesArgs {
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}
