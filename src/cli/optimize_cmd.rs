//! `npuopt optimize`.

use std::time::Instant;

use super::args::OptimizeArgs;
use super::CliError;
use crate::exit;
use crate::inspect::{human_bytes, summarize};
use crate::optimize::{optimize, OptimizeOptions};

pub fn run(a: OptimizeArgs, quiet: bool) -> Result<i32, CliError> {
    if !a.force && same_file(&a.input, &a.output) {
        return Err(CliError::usage(anyhow::anyhow!(
            "the output '{}' is the input file; pass --force to overwrite it",
            a.output.display()
        )));
    }
    let passes = npuopt_passes::resolve_pass_list(a.passes.as_deref(), a.skip.as_deref())
        .map_err(CliError::usage)?;
    let start = Instant::now();
    let mut model = npuopt_ir::import::load(&a.input).map_err(CliError::input)?;
    let before = summarize(&model);
    let outcome = optimize(
        &mut model,
        &OptimizeOptions {
            passes,
            verify: !a.no_verify,
        },
    )
    .map_err(CliError::input)?;
    let opts = npuopt_ir::export::WriteOptions {
        external: a.external_data.then(|| npuopt_ir::export::ExternalData {
            location: format!(
                "{}.data",
                a.output
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            min_bytes: 1024,
        }),
    };
    if let Some(path) = &a.dump {
        let text = npuopt_ir::dump::dump(&model.graph).map_err(CliError::input)?;
        std::fs::write(path, text).map_err(CliError::input)?;
    }
    let written = model.write(&a.output, &opts).map_err(CliError::input)?;
    let after = summarize(&model);
    if !quiet {
        eprintln!(
            "{} → {}: {} → {} nodes, {} → {} parameters, {} written in {:.2} s{}",
            a.input.display(),
            a.output.display(),
            before.nodes,
            after.nodes,
            before.parameters,
            after.parameters,
            human_bytes(written),
            start.elapsed().as_secs_f64(),
            if outcome.verified {
                ""
            } else {
                " (not verified)"
            }
        );
    }
    Ok(exit::OK)
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
