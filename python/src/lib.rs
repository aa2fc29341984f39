//! `npuopt._npuopt`: the Rust side of the npuopt Python package.
//!
//! A thin layer over the root crate, nothing duplicated: options are the
//! command line's flags, parsed by its own parser (`npuopt::cli`); runs go
//! through the command's own code (`npuopt::cli::optimize_job`); reports
//! are its JSON documents (`npuopt::report`), handed to Python as dicts.
//! The Python side (`npuopt/__init__.py`) turns keyword arguments into
//! flags and `onnx.ModelProto`s into bytes.
//!
//! Every run releases the GIL and can be interrupted (`interrupt`); errors
//! become the package's exceptions (`errors`); models passed as `bytes` are
//! borrowed, not copied (`source`).

mod errors;
mod interrupt;
mod module;
mod source;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use npuopt::cli::optimize_job::{execute, written_facts, JobError, Output};
use npuopt::cli::{CliError, Command, OptimizeArgs};
use npuopt::report::{content_hash, FileFacts};
use npuopt::verify::{verify_bytes, verify_files};
use prost::Message;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule};

use source::Source;

/// Parses `npuopt <args…>` with the command line's own parser; a bad flag
/// or value is a `UsageError` with clap's message.
fn parse(py: Python<'_>, args: Vec<OsString>) -> PyResult<Command> {
    let argv = std::iter::once(OsString::from("npuopt")).chain(args);
    match npuopt::cli::Cli::try_parse_from(argv) {
        Ok(cli) => Ok(cli.command),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            Err(errors::usage(
                py,
                first.strip_prefix("error: ").unwrap_or(first).to_string(),
            ))
        }
    }
}

fn optimize_args(
    py: Python<'_>,
    input: &str,
    output: &Path,
    flags: Vec<String>,
) -> PyResult<OptimizeArgs> {
    let mut args: Vec<OsString> = vec!["optimize".into(), input.into(), "-o".into()];
    args.push(output.into());
    args.extend(flags.into_iter().map(OsString::from));
    match parse(py, args)? {
        Command::Optimize(a) => Ok(a),
        _ => unreachable!("parsed an optimize command"),
    }
}

/// A model in memory has no folder of its own: `base_dir` says where its
/// external data is. A model file's external data is beside it.
fn check_base_dir(py: Python<'_>, source: &Source, base_dir: &Option<PathBuf>) -> PyResult<()> {
    match (source, base_dir) {
        (Source::Path(_), Some(_)) => Err(errors::usage(
            py,
            "base_dir is for models in memory; a model file's external data is read from its folder"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// Optimizes `model` (bytes or a path) with the command line's `flags`;
/// returns the optimized model's bytes and the JSON report.
fn optimize<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    flags: Vec<String>,
    base_dir: Option<PathBuf>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyAny>)> {
    let source = Source::extract(model)?;
    check_base_dir(py, &source, &base_dir)?;
    let a = optimize_args(py, &source.name(), Path::new("<memory>"), flags)?;
    let (done, proto) = interrupt::run(py, |cancel| {
        let done = execute(
            &a,
            source.input(base_dir.as_deref()),
            Output::Memory,
            true,
            true,
            cancel,
        )?;
        let proto = done
            .model
            .to_proto()
            .map_err(|e| JobError::Cli(CliError::input(e)))?;
        Ok((done, proto))
    })
    .map_err(|f| errors::failure(py, f))?
    .map_err(|e| errors::job(py, e))?;
    let len = proto.encoded_len();
    if len as u64 > npuopt_ir::export::PROTOBUF_LIMIT {
        return Err(errors::invalid_model(
            py,
            "the optimized model exceeds protobuf's 2 GiB limit: use optimize_file(..., \
             external_data=True)"
                .into(),
        ));
    }
    // Encoded straight into the Python object: no second copy of the model.
    let out = PyBytes::new_with(py, len, |mut buf| {
        proto
            .encode(&mut buf)
            .map_err(|e| errors::invalid_model(py, format!("cannot encode the model: {e}")))
    })?;
    drop(proto);
    let encoded = out.as_bytes();
    let hash = py.detach(|| content_hash(encoded));
    let facts = FileFacts {
        path: None,
        bytes: len as u64,
        hash,
        external_bytes: 0,
    };
    let report = errors::json_to_py(py, &done.report(&facts))?;
    Ok((out, report))
}

/// Optimizes `model` into the file `output`, written atomically as the
/// command line writes it; returns the JSON report.
fn optimize_file<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    output: PathBuf,
    flags: Vec<String>,
    base_dir: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let source = Source::extract(model)?;
    check_base_dir(py, &source, &base_dir)?;
    let a = optimize_args(py, &source.name(), &output, flags)?;
    let report = interrupt::run(py, |cancel| {
        let done = execute(
            &a,
            source.input(base_dir.as_deref()),
            Output::File(&a.output),
            true,
            true,
            cancel,
        )?;
        let facts = written_facts(&a.output, done.written)?;
        Ok(done.report(&facts))
    })
    .map_err(|f| errors::failure(py, f))?
    .map_err(|e| errors::job(py, e))?;
    errors::json_to_py(py, &report)
}

/// Compares two models with tract (the `verify` command's flags); returns
/// the figures, or raises `VerificationError` with them when they differ.
fn verify<'py>(
    py: Python<'py>,
    reference: &Bound<'py, PyAny>,
    candidate: &Bound<'py, PyAny>,
    flags: Vec<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let reference = Source::extract(reference)?;
    let candidate = Source::extract(candidate)?;
    let mut args: Vec<OsString> = vec![
        "verify".into(),
        reference.name().into(),
        candidate.name().into(),
    ];
    args.extend(flags.into_iter().map(OsString::from));
    let Command::Verify(a) = parse(py, args)? else {
        unreachable!("parsed a verify command")
    };
    let opts = a
        .check
        .to_options()
        .map_err(|e| errors::cli(py, CliError::input(e)))?;
    let result = interrupt::run(py, |cancel| {
        let opts = npuopt::verify::VerifyOptions { cancel, ..opts };
        match (&reference, &candidate) {
            (Source::Path(r), Source::Path(c)) => {
                verify_files(r, c, &opts).map_err(CliError::input)
            }
            _ => {
                let read = |s: &Source| {
                    s.bytes().map_err(|e| {
                        CliError::input(anyhow::anyhow!("cannot read '{}': {e}", s.name()))
                    })
                };
                let (r, c) = (read(&reference)?, read(&candidate)?);
                verify_bytes(&r, &c, &opts).map_err(CliError::input)
            }
        }
    })
    .map_err(|f| errors::failure(py, f))?
    .map_err(|e| errors::cli(py, e))?;
    if !result.passed {
        let message = format!(
            "verification failed: {}",
            npuopt::optimize::mismatch_summary(&result)
        );
        return Err(errors::mismatch(py, message, &result, None, None));
    }
    errors::json_to_py(py, &npuopt::report::verification_json(&result))
}

/// The `inspect --json` summary, the `inspect --target --json` estimate
/// (with a target) and one row per node.
fn inspect<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    target: Option<String>,
    base_dir: Option<PathBuf>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let source = Source::extract(model)?;
    check_base_dir(py, &source, &base_dir)?;
    let target = target
        .map(|t| npuopt_targets::Target::resolve(&t))
        .transpose()
        .map_err(|e| errors::usage(py, e.to_string()))?;
    let (summary, estimate, rows) = interrupt::run(py, |_| {
        let model = match &source {
            Source::Path(p) => npuopt::load(p),
            Source::Bytes(b) => npuopt_ir::import::from_bytes(b.clone(), base_dir.as_deref()),
        }
        .map_err(CliError::input)?;
        let summary = serde_json::to_value(npuopt::summarize(&model)).map_err(CliError::input)?;
        let estimate = target
            .as_ref()
            .map(|t| npuopt::report::estimate_json(&npuopt_targets::estimate(&model.graph, t)));
        let rows =
            serde_json::to_value(npuopt::inspect::node_rows(&model)).map_err(CliError::input)?;
        Ok::<_, CliError>((summary, estimate, rows))
    })
    .map_err(|f| errors::failure(py, f))?
    .map_err(|e| errors::cli(py, e))?;
    Ok((
        errors::json_to_py(py, &summary)?,
        errors::json_to_py(py, &estimate.unwrap_or(serde_json::Value::Null))?,
        errors::json_to_py(py, &rows)?,
    ))
}

/// The `passes --json` list.
fn passes(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    errors::json_to_py(py, &npuopt::cli::passes_json()["passes"])
}

/// The `targets --json` list.
fn targets(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let rows = npuopt::cli::targets_json().map_err(|e| errors::cli(py, e))?;
    errors::json_to_py(py, &rows)
}

/// The command line itself on `argv` (without the program name): prints
/// what `npuopt` prints and returns its exit code. A panic is reported
/// and returns 101, the Rust binary's status for it.
fn main(py: Python<'_>, argv: Vec<OsString>) -> i32 {
    py.detach(|| {
        let argv = std::iter::once(OsString::from("npuopt")).chain(argv);
        let code = std::panic::catch_unwind(|| npuopt::cli::run_argv(argv)).unwrap_or(101);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        code
    })
}

/// Panics on the work thread, on purpose: how the tests prove that a panic
/// becomes an `InternalError` instead of unwinding into Python.
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    interrupt::run(py, |_| panic!("on purpose, for the tests")).map_err(|f| errors::failure(py, f))
}

/// Adds the functions to the module (see `module`); arguments come
/// positionally, as `npuopt/_npuopt.pyi` types them.
fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module::add(m, c"optimize", c"optimize(model, flags, base_dir)", |a| {
        let (model, flags, base_dir): (Bound<PyAny>, Vec<String>, Option<PathBuf>) = a.extract()?;
        let out = optimize(a.py(), &model, flags, base_dir)?;
        Ok(out.into_pyobject(a.py())?.into_any().unbind())
    })?;
    module::add(
        m,
        c"optimize_file",
        c"optimize_file(model, output, flags, base_dir)",
        |a| {
            let (model, output, flags, base_dir): (
                Bound<PyAny>,
                PathBuf,
                Vec<String>,
                Option<PathBuf>,
            ) = a.extract()?;
            Ok(optimize_file(a.py(), &model, output, flags, base_dir)?.unbind())
        },
    )?;
    module::add(m, c"verify", c"verify(reference, candidate, flags)", |a| {
        let (reference, candidate, flags): (Bound<PyAny>, Bound<PyAny>, Vec<String>) =
            a.extract()?;
        Ok(verify(a.py(), &reference, &candidate, flags)?.unbind())
    })?;
    module::add(m, c"inspect", c"inspect(model, target, base_dir)", |a| {
        let (model, target, base_dir): (Bound<PyAny>, Option<String>, Option<PathBuf>) =
            a.extract()?;
        let out = inspect(a.py(), &model, target, base_dir)?;
        Ok(out.into_pyobject(a.py())?.into_any().unbind())
    })?;
    module::add(m, c"passes", c"passes()", |a| Ok(passes(a.py())?.unbind()))?;
    module::add(m, c"targets", c"targets()", |a| {
        Ok(targets(a.py())?.unbind())
    })?;
    module::add(m, c"main", c"main(argv) -> exit code", |a| {
        let (argv,): (Vec<OsString>,) = a.extract()?;
        Ok(main(a.py(), argv)
            .into_pyobject(a.py())?
            .into_any()
            .unbind())
    })?;
    module::add(m, c"_panic_for_tests", c"_panic_for_tests()", |a| {
        _panic_for_tests(a.py())?;
        Ok(a.py().None())
    })?;
    Ok(())
}
