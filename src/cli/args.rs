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
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Command {
    /// Rewrite a model and write the result.
    #[command(after_help = concat!(
        "Examples:\n",
        "  npuopt optimize model.onnx -o model.opt.onnx --passes none --no-verify\n",
        "  npuopt optimize model.onnx -o out.onnx --external-data\n",
        "  npuopt optimize model.onnx -o out.onnx --target ethos-u55-256 --report report.json\n",
        "  npuopt optimize model.onnx -o ft.onnx --target axera-m55h --intent capacity\n\n",
        "With --target, the hardware passes join the pipeline and each of their rewrites is\n",
        "applied only if the target's estimated latency falls (deploy) or, for rewrites\n",
        "that add capacity, stays within the input's (capacity); cycles and latencies are\n",
        "estimates of an analytic cost model.\n\n",
        "Exit codes:\n  0 ok, 1 bad input or internal error, 2 usage error, 3 verification failed"
    ))]
    Optimize(OptimizeArgs),
    /// Compare two models numerically with tract on the same seeded random inputs.
    #[command(after_help = concat!(
        "Examples:\n",
        "  npuopt verify model.onnx model.opt.onnx\n",
        "  npuopt verify a.onnx b.onnx --input-shape input=1,3,224,224 --samples 4 --json\n\n",
        "Exit codes:\n  0 outputs match, 3 outputs differ, 1 a model cannot be loaded or run, 2 usage error"
    ))]
    Verify(VerifyArgs),
    /// Summarize a model: producer, opsets, inputs and outputs, ops, parameters, MACs;
    /// with --target, its estimated cost per layer on an NPU.
    #[command(after_help = concat!(
        "Examples:\n",
        "  npuopt inspect model.onnx\n",
        "  npuopt inspect model.onnx --json\n",
        "  npuopt inspect model.onnx --target ethos-u55-256\n",
        "  npuopt inspect model.onnx --target my-npu.toml --json\n",
        "  npuopt inspect model.onnx --quant --target hexagon-htp\n\n",
        "Cycles and latencies from --target are estimates of an analytic cost model."
    ))]
    Inspect(InspectArgs),
    /// List the built-in NPU targets, or show one in full.
    #[command(after_help = concat!(
        "Examples:\n",
        "  npuopt targets\n",
        "  npuopt targets hexagon-htp\n",
        "  npuopt targets ethos-u55-256 --json\n",
        "  npuopt targets my-npu.toml        # check a target file of your own"
    ))]
    Targets(TargetsArgs),
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
    /// Write the IR text dump after pass PASS to FILE (repeatable).
    #[arg(long, num_args = 2, value_names = ["PASS", "FILE"])]
    pub dump_after: Vec<String>,
    /// Verify after every pass that changed the graph, and name the first
    /// pass and rewrite that breaks numerics.
    #[arg(long, conflicts_with = "no_verify")]
    pub verify_each: bool,
    /// When tract cannot verify the output (an op it cannot load or run),
    /// write it anyway, marked "NOT VERIFIED: REASON" in the summary, the
    /// reports and the model's metadata_props, and exit 0. A mismatch still
    /// exits 3.
    #[arg(long, conflicts_with = "no_verify")]
    pub allow_unverified: bool,
    /// Stop after N rewrites in total (bisect a bad rewrite by hand).
    #[arg(long, value_name = "N")]
    pub max_rewrites: Option<usize>,
    /// Write the full report (passes, every change, figures, hashes) as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write a self-contained HTML report: estimated cycles per layer before
    /// and after (with --target), every decision, the verification figures.
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
    /// Optimize for this NPU: a built-in name (see `npuopt targets`) or a
    /// path to a target .toml. Adds the hardware passes, gated by its cost
    /// model.
    #[arg(long, value_name = "NAME|FILE")]
    pub target: Option<String>,
    /// deploy: minimise the estimated latency. capacity: apply exact
    /// rewrites that add trainable capacity (depthwise→group, channel
    /// padding) while the estimated latency stays within the input's (with
    /// BN folded and branches merged) — a model to fine-tune, marked so in
    /// its metadata. Needs --target.
    #[arg(long, value_name = "deploy|capacity", default_value = "deploy")]
    pub intent: String,
    /// Apply pass PASS's hardware rewrites whatever the cost model says
    /// (repeatable).
    #[arg(long, value_name = "PASS")]
    pub force_pass: Vec<String>,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// How verification draws inputs and compares outputs.
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of random input sets.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Shape of a graph input, e.g. `images=1,3,640,640` (repeatable).
    /// optimize: pinned for the whole run (shape inference, passes, cost
    /// model, verification) and declared by the written model; verify: the
    /// shape both models run at.
    #[arg(long, value_name = "NAME=D,D,…")]
    pub input_shape: Vec<String>,
    /// Range `LO,HI` of integer inputs (default 0,10).
    #[arg(long, value_name = "LO,HI")]
    pub input_range: Option<String>,
    /// A fixed relative tolerance instead of the noise verdict: pass when
    /// max|a−b| ≤ atol + rtol·max|ref| (atol then defaults to 1e-6).
    #[arg(long)]
    pub rtol: Option<f32>,
    /// A fixed absolute tolerance instead of the noise verdict (rtol then
    /// defaults to 1e-4).
    #[arg(long)]
    pub atol: Option<f32>,
    /// k of the noise verdict: an output passes when its error against the
    /// f64 reference is at most k times the input model's own.
    #[arg(long, value_name = "K", default_value_t = crate::verify::NOISE_FACTOR)]
    pub noise_factor: f64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The reference model.
    pub reference: PathBuf,
    /// The model to check against it.
    pub candidate: PathBuf,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
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
    /// Estimate the cost per layer on this target: a built-in name (see
    /// `npuopt targets`) or a path to a target .toml.
    #[arg(long, value_name = "NAME|FILE", conflicts_with = "dump")]
    pub target: Option<String>,
    /// Pin a graph input's shape, e.g. `images=1,3,640,640` (repeatable):
    /// the summary, dump and estimate see the pinned model.
    #[arg(long, value_name = "NAME=D,D,…")]
    pub input_shape: Vec<String>,
    /// The int8 view instead: per layer, the weights' range spread across
    /// output channels and their int8 SQNR, as they are and after
    /// equalize-ranges (with --target, the target's int8 scheme heads it).
    #[arg(long, conflicts_with = "dump")]
    pub quant: bool,
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// A built-in target name or a path to a target .toml.
    pub name: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PassesArgs {
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}
