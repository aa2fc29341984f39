//! `npuopt optimize` as a library call, shared by the command and the
//! Python package: the flags resolved into options, the input read from a
//! file or taken from memory, the passes and verification, the output
//! written to a file (atomically) or left in memory, and the facts the JSON
//! report is made of. The command prints what this returns; the Python
//! package returns it. One implementation of the command's rules, not two.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use npuopt_ir::export::write_file_atomically;
use npuopt_ir::Model;
use serde_json::Value;

use super::args::OptimizeArgs;
use super::progress::Progress;
use super::CliError;
use crate::inspect::{summarize, ModelSummary};
use crate::optimize::{optimize, Cancel, OptimizeError, OptimizeOptions, OptimizeOutcome};
use crate::report::{content_hash, optimize_json, FileFacts};

/// Where the model comes from.
pub enum Input<'a> {
    /// A model file; its external data is read from its folder.
    File(&'a Path),
    /// An encoded model in memory, shared, not copied; external data is
    /// read from `dir` (without one, a model with external data is an
    /// error).
    Memory { bytes: Bytes, dir: Option<&'a Path> },
}

/// Where the optimized model goes.
pub enum Output<'a> {
    /// Written atomically; with `--external-data`, tensors go beside it.
    File(&'a Path),
    /// Nowhere: the caller encodes [`Done::model`] itself.
    Memory,
}

/// A finished run.
pub struct Done {
    /// The optimized model.
    pub model: Model,
    pub outcome: OptimizeOutcome,
    pub before: ModelSummary,
    pub after: ModelSummary,
    /// The input's path (files only), size and hash (the hash only when a
    /// report was asked for — `report`, `--report`, `--report-html` or an
    /// in-memory run —, else empty).
    pub input: FileFacts,
    /// Bytes written to the output file and its side file (0 for
    /// [`Output::Memory`]).
    pub written: npuopt_ir::export::Written,
    /// The int8 weight figures of the input and the output, when a report
    /// carries them (`--report`, `--report-html`, or an in-memory run,
    /// whose caller always gets the report): they read every weight.
    pub quantization: Option<crate::quant_view::QuantReport>,
}

impl Done {
    /// The JSON report (`--report`), given the output's facts.
    pub fn report(&self, output: &FileFacts) -> Value {
        let mut json = optimize_json(
            &self.input,
            output,
            &self.before,
            &self.after,
            &self.outcome,
        );
        if let Some(q) = &self.quantization {
            json["quantization"] = crate::quant_view::report_json(q);
        }
        json
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum JobError {
    /// A bad flag (exit code 2) or bad input (exit code 1).
    Cli(CliError),
    /// The output does not match the input (exit code 3): nothing was
    /// written. [`OptimizeError::verify_report`] has the figures.
    Mismatch(OptimizeError),
    /// The run's [`Cancel`] flag fired: nothing was written.
    Cancelled,
}

impl From<CliError> for JobError {
    fn from(e: CliError) -> JobError {
        JobError::Cli(e)
    }
}

/// The run's options from its flags; usage errors come first, then the
/// target (a bad name fails before any model is read).
pub fn options(a: &OptimizeArgs) -> Result<OptimizeOptions, CliError> {
    let intent = npuopt_passes::Intent::parse(&a.intent).ok_or_else(|| {
        CliError::usage(anyhow::anyhow!(
            "unknown --intent '{}'; expected deploy or capacity",
            a.intent
        ))
    })?;
    if a.target.is_none() && intent == npuopt_passes::Intent::Capacity {
        return Err(CliError::usage(anyhow::anyhow!(
            "--intent capacity needs --target (the capacity is shaped for a target)"
        )));
    }
    for name in &a.force_pass {
        npuopt_passes::resolve_pass_list(Some(name), None).map_err(CliError::usage)?;
    }
    let target = match &a.target {
        Some(spec) => Some(Arc::new(
            npuopt_targets::Target::resolve(spec).map_err(CliError::input)?,
        )),
        None => None,
    };
    let passes = npuopt_passes::resolve_pass_list_for(
        a.passes.as_deref(),
        a.skip.as_deref(),
        target.as_deref(),
    )
    .map_err(CliError::usage)?;
    let mut dump_after = Vec::new();
    for pair in a.dump_after.chunks(2) {
        let name =
            npuopt_passes::resolve_pass_list(Some(&pair[0]), None).map_err(CliError::usage)?;
        dump_after.push((name[0].to_string(), pair[1].clone().into()));
    }
    let input_shapes =
        super::check_args::parse_input_shapes_i64(&a.check.input_shape).map_err(CliError::input)?;
    let verify = if a.no_verify {
        None
    } else {
        Some(a.check.to_options().map_err(CliError::input)?)
    };
    Ok(OptimizeOptions {
        input_shapes,
        passes,
        verify,
        verify_each: a.verify_each,
        allow_unverified: a.allow_unverified,
        max_rewrites: a.max_rewrites,
        dump_after,
        target,
        intent,
        force_passes: a.force_pass.clone(),
        cancel: Cancel::never(),
        source: None,
        skip_note_hashes: false,
    })
}

/// Runs `npuopt optimize` with the flags `a` on `input`, writing to
/// `output` and to the files the flags name (`--dump`, `--report`,
/// `--report-html`); `a.input` and `a.output` are only names here.
/// Progress goes to stderr unless `quiet`; nothing else is printed.
/// `report` asks for everything a report carries even when no report file
/// is named (the Python package returns the report with every result).
pub fn execute(
    a: &OptimizeArgs,
    input: Input,
    output: Output,
    quiet: bool,
    report: bool,
    cancel: Cancel,
) -> Result<Done, JobError> {
    if let (Input::File(i), Output::File(o)) = (&input, &output) {
        if !a.force && same_file(i, o) {
            return Err(CliError::usage(anyhow::anyhow!(
                "the output '{}' is the input file; pass --force to overwrite it",
                o.display()
            ))
            .into());
        }
    }
    let opts = OptimizeOptions {
        cancel,
        ..options(a)?
    };
    let progress = Progress::new(quiet);
    let (input_bytes, dir, path) = match input {
        Input::File(path) => {
            let _step = progress.step(&format!("reading {}", path.display()));
            let bytes = npuopt_ir::mapped::read(path).map_err(|e| {
                CliError::input(anyhow::anyhow!("cannot read '{}': {e}", path.display()))
            })?;
            (bytes, folder_of(path), Some(path))
        }
        Input::Memory { bytes, dir } => (bytes, dir, None),
    };
    let wants_report =
        report || a.report.is_some() || a.report_html.is_some() || matches!(output, Output::Memory);
    // Change notes reach the user only through a report.
    let opts = OptimizeOptions {
        skip_note_hashes: !wants_report,
        ..opts
    };
    // The input's hash reads every byte of the file, one at a time (FNV-1a:
    // ~60 ms for a 45 MB model): taken only when a report carries it, on a
    // second thread while the model is imported and optimized.
    let input_hash = wants_report.then(|| {
        let bytes = input_bytes.clone();
        std::thread::spawn(move || content_hash(&bytes))
    });
    let input_len = input_bytes.len() as u64;
    // Verification reads the input from its bytes as they came.
    let opts = OptimizeOptions {
        source: opts
            .verify
            .is_some()
            .then(|| (input_bytes.clone(), dir.map(Path::to_path_buf))),
        ..opts
    };
    let mut model = npuopt_ir::import::from_bytes(input_bytes, dir).map_err(CliError::input)?;
    let before = summarize_resolving_shapes(&model, &opts.input_shapes);
    // The input's quantization figures read every weight: taken only when
    // a report will carry them.
    let input_quant = wants_report.then(|| crate::quant_view::input_summary(&model));
    let step = progress.step(if a.no_verify {
        "optimizing"
    } else {
        "optimizing and verifying with tract"
    });
    let outcome = match optimize(&mut model, &opts) {
        Ok(o) => o,
        Err(OptimizeError::Cancelled) => return Err(JobError::Cancelled),
        Err(e @ (OptimizeError::Mismatch { .. } | OptimizeError::BrokenBy { .. })) => {
            return Err(JobError::Mismatch(e))
        }
        Err(e) => return Err(CliError::input(e).into()),
    };
    drop(step);
    if let Some(path) = &a.dump {
        let text = npuopt_ir::dump::dump(&model.graph).map_err(CliError::input)?;
        write_file_atomically(path, text.as_bytes()).map_err(CliError::input)?;
    }
    let written = match output {
        Output::File(path) => {
            let _step = progress.step(&format!("writing {}", path.display()));
            model
                .write_sized(path, &write_options(a, path))
                .map_err(CliError::input)?
        }
        Output::Memory => Default::default(),
    };
    let after = summarize(&model);
    let quantization = input_quant.map(|q| crate::quant_view::report(q, &model));
    let input_facts = FileFacts {
        path: path.map(|p| p.display().to_string()),
        bytes: input_len,
        hash: input_hash.and_then(|h| h.join().ok()).unwrap_or_default(),
        external_bytes: model.external_bytes,
    };
    let done = Done {
        model,
        outcome,
        before,
        after,
        input: input_facts,
        written,
        quantization,
    };
    if let (Some(report), Output::File(out)) = (&a.report, output) {
        let json = done.report(&written_facts(out, written)?);
        let text = serde_json::to_string_pretty(&json).map_err(CliError::input)? + "\n";
        write_file_atomically(report, text.as_bytes()).map_err(CliError::input)?;
    }
    if let Some(path) = &a.report_html {
        let name = path_name(&a.input);
        let c = done.outcome.cost.as_ref();
        let page = crate::report_html::ReportInput {
            model_name: &name,
            target: c.map(|c| c.target.as_str()),
            estimate_before: c.map(|c| &c.before),
            estimate_after: c.map(|c| &c.after),
            capacity_budget: c.and_then(|c| c.capacity_budget),
            pipeline: &done.outcome.pipeline,
            before: &done.before,
            after: &done.after,
            verification: done.outcome.verification.as_ref(),
            unverified: done.outcome.unverified.as_deref(),
            quantization: done.quantization.as_ref(),
        };
        crate::report_html::write_html_report(path, &page).map_err(CliError::input)?;
    }
    Ok(done)
}

/// The facts of a written output: its path, size and the hash of the model
/// file as written.
pub fn written_facts(
    path: &Path,
    written: npuopt_ir::export::Written,
) -> Result<FileFacts, CliError> {
    let bytes = std::fs::read(path).map_err(CliError::input)?;
    Ok(FileFacts {
        path: Some(path.display().to_string()),
        bytes: written.model_bytes,
        hash: content_hash(&bytes),
        external_bytes: written.external_bytes,
    })
}

fn write_options(a: &OptimizeArgs, path: &Path) -> npuopt_ir::export::WriteOptions {
    npuopt_ir::export::WriteOptions {
        external: a.external_data.then(|| npuopt_ir::export::ExternalData {
            location: format!("{}.data", path_name(path)),
            min_bytes: 1024,
        }),
        ..Default::default()
    }
}

fn path_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The folder a model file's external data is read from.
fn folder_of(path: &Path) -> Option<&Path> {
    path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The input's summary. When some shapes are only computed at run time
/// (TorchScript exports' Shape → Gather → Slice chains), its MACs are taken
/// from a copy after the shape-resolving cleanup passes, which change no
/// arithmetic — otherwise those layers would count as zero MACs.
fn summarize_resolving_shapes(model: &Model, input_shapes: &[(String, Vec<i64>)]) -> ModelSummary {
    let pinned;
    let model = if input_shapes.is_empty() {
        model
    } else {
        // The input as the run sees it (a bad pin fails in optimize, with
        // its message).
        let mut m = model.clone();
        let _ = npuopt_ir::pin::pin_input_shapes(&mut m.graph, input_shapes);
        pinned = m;
        &pinned
    };
    let mut s = summarize(model);
    if s.nodes_with_unknown_macs == 0 {
        return s;
    }
    let mut probe = model.clone();
    let cleanup = &crate::optimize::CLEANUP;
    if npuopt_passes::run_pipeline(&mut probe, cleanup, Default::default()).is_ok() {
        let resolved = summarize(&probe);
        if resolved.nodes_with_unknown_macs < s.nodes_with_unknown_macs {
            s.macs = resolved.macs;
            s.dense_macs = resolved.dense_macs;
            s.nodes_with_unknown_macs = resolved.nodes_with_unknown_macs;
            s.largest_layers = resolved.largest_layers;
        }
    }
    s
}
