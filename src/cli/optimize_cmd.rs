//! `npuopt optimize`.

use std::path::Path;
use std::time::Instant;

use super::args::OptimizeArgs;
use super::progress::Progress;
use super::CliError;
use crate::exit;
use crate::inspect::{human_bytes, summarize};
use crate::optimize::{optimize, OptimizeError, OptimizeOptions};
use crate::report::{content_hash, optimize_json, FileFacts};
use npuopt_ir::export::write_file_atomically;

pub fn run(a: OptimizeArgs, quiet: bool) -> Result<i32, CliError> {
    if !a.force && same_file(&a.input, &a.output) {
        return Err(CliError::usage(anyhow::anyhow!(
            "the output '{}' is the input file; pass --force to overwrite it",
            a.output.display()
        )));
    }
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
    // Resolve the target first: a bad name fails before the model is read.
    let target = match &a.target {
        Some(spec) => Some(std::sync::Arc::new(
            npuopt_targets::Target::resolve(spec).map_err(CliError::input)?,
        )),
        None => None,
    };
    let passes = npuopt_passes::resolve_pass_list_for(
        a.passes.as_deref(),
        a.skip.as_deref(),
        target.is_some(),
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
    let start = Instant::now();
    let progress = Progress::new(quiet);
    let step = progress.step(&format!("reading {}", a.input.display()));
    let input_bytes = std::fs::read(&a.input).map_err(|e| {
        CliError::input(anyhow::anyhow!("cannot read '{}': {e}", a.input.display()))
    })?;
    let input_facts = FileFacts {
        path: a.input.display().to_string(),
        bytes: input_bytes.len() as u64,
        hash: content_hash(&input_bytes),
    };
    let dir = a.input.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let mut model =
        npuopt_ir::import::from_bytes(input_bytes.into(), dir).map_err(CliError::input)?;
    let before = summarize_resolving_shapes(&model, &input_shapes);
    for d in &before.disputes {
        eprintln!("warning: {d}; no rewrite relies on its shape");
    }
    drop(step);
    let step = progress.step(if a.no_verify {
        "optimizing"
    } else {
        "optimizing and verifying with tract"
    });
    let outcome = match optimize(
        &mut model,
        &OptimizeOptions {
            passes,
            verify,
            verify_each: a.verify_each,
            max_rewrites: a.max_rewrites,
            dump_after,
            target,
            intent,
            force_passes: a.force_pass.clone(),
            input_shapes,
        },
    ) {
        Ok(o) => o,
        Err(e @ (OptimizeError::Mismatch { .. } | OptimizeError::BrokenBy { .. })) => {
            eprintln!("error: {e}");
            eprintln!("nothing was written");
            return Ok(exit::MISMATCH);
        }
        Err(e) => return Err(CliError::input(e)),
    };
    drop(step);
    let _step = progress.step(&format!("writing {}", a.output.display()));
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
        write_file_atomically(path, text.as_bytes()).map_err(CliError::input)?;
    }
    let written = model.write(&a.output, &opts).map_err(CliError::input)?;
    let after = summarize(&model);
    if let Some(path) = &a.report {
        let out_bytes = std::fs::read(&a.output).map_err(CliError::input)?;
        let output_facts = FileFacts {
            path: a.output.display().to_string(),
            bytes: written,
            hash: content_hash(&out_bytes),
        };
        let json = optimize_json(&input_facts, &output_facts, &before, &after, &outcome);
        let text = serde_json::to_string_pretty(&json).map_err(CliError::input)? + "\n";
        write_file_atomically(path, text.as_bytes()).map_err(CliError::input)?;
    }
    if let Some(path) = &a.report_html {
        let name = a
            .input
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let input = crate::report_html::ReportInput {
            model_name: &name,
            target: outcome.cost.as_ref().map(|c| c.target.as_str()),
            estimate_before: outcome.cost.as_ref().map(|c| &c.before),
            estimate_after: outcome.cost.as_ref().map(|c| &c.after),
            capacity_budget: outcome.cost.as_ref().and_then(|c| c.capacity_budget),
            pipeline: &outcome.pipeline,
            before: &before,
            after: &after,
            verification: outcome.verification.as_ref(),
        };
        crate::report_html::write_html_report(path, &input).map_err(CliError::input)?;
    }
    if !quiet {
        for s in &outcome.pipeline.passes {
            eprintln!(
                "  {:<22} {:>5} rewrites   nodes {} → {}",
                s.pass, s.rewrites, s.nodes_before, s.nodes_after
            );
        }
        if !outcome.pinned_symbols.is_empty() {
            let b: Vec<String> = outcome
                .pinned_symbols
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            eprintln!("  pinned symbolic dims: {}", b.join(", "));
        }
        if let Some(c) = &outcome.cost {
            let applied = outcome
                .pipeline
                .decisions
                .iter()
                .filter(|d| d.applied)
                .count();
            eprintln!(
                "  target {} ({} intent): est. {} → {} cycles, {:.3} → {:.3} ms (estimates); {} of {} cost-gated rewrites applied",
                c.target,
                c.intent,
                c.before.total_cycles,
                c.after.total_cycles,
                c.before.latency_ms,
                c.after.latency_ms,
                applied,
                outcome.pipeline.decisions.len()
            );
            let symbols = crate::report::symbols_at_one(c);
            if !symbols.is_empty() {
                eprintln!("  note: {}", super::notes::symbols_note(&symbols));
            }
            for (which, e) in [("input", &c.before), ("output", &c.after)] {
                if e.unsized_layers > 0 {
                    let first = e.layers.iter().find(|l| l.missing_shape.is_some());
                    eprintln!(
                        "  warning: {} layer{} of the {which} could not be sized and {} not costed \
                         (first: '{}', {}); see inspect --target",
                        e.unsized_layers,
                        if e.unsized_layers == 1 { "" } else { "s" },
                        if e.unsized_layers == 1 { "is" } else { "are" },
                        first.map(|l| l.name.as_str()).unwrap_or(""),
                        first
                            .map(|l| l.note.trim_start_matches("unsized: ").trim_end_matches(" (not costed)"))
                            .unwrap_or("")
                    );
                }
            }
            if let Some(b) = c.capacity_budget {
                eprintln!(
                    "  capacity budget: est. {b} cycles (the input with BN folded and branches merged)"
                );
            }
            for d in &outcome.pipeline.decisions {
                // An applied decision's reason is the change's note; a
                // rejected one says why, and this says what was proposed.
                let proposed = match d.proposed.split([':', ';']).next() {
                    Some(what) if !d.applied && !what.is_empty() => format!(" ({what})"),
                    _ => String::new(),
                };
                eprintln!(
                    "    {} {}/{} '{}'{proposed}: {}",
                    if d.applied { "applied " } else { "rejected" },
                    d.pass,
                    d.rule,
                    d.node,
                    d.reason
                );
            }
        }
        if outcome.pipeline.hit_iteration_cap {
            eprintln!("  note: stopped at the iteration cap before a fixed point");
        }
        if outcome.pipeline.hit_rewrite_cap {
            eprintln!(
                "  note: stopped after --max-rewrites {}",
                a.max_rewrites.unwrap_or(0)
            );
        }
        let verified = match &outcome.verification {
            Some(v) => {
                let worst = v.outputs.iter().map(|o| o.max_abs_err).fold(0.0, f64::max);
                format!("verified with tract (max abs err {worst:.2e})")
            }
            None => "NOT verified (--no-verify)".to_string(),
        };
        eprintln!(
            "{} → {}: nodes {} → {}, parameters {} → {}, MACs {} → {}, {} → {} in {:.2} s; {}",
            a.input.display(),
            a.output.display(),
            before.nodes,
            after.nodes,
            before.parameters,
            after.parameters,
            before.macs,
            after.macs,
            human_bytes(input_facts.bytes),
            human_bytes(written),
            start.elapsed().as_secs_f64(),
            verified
        );
    }
    Ok(exit::OK)
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
fn summarize_resolving_shapes(
    model: &npuopt_ir::Model,
    input_shapes: &[(String, Vec<i64>)],
) -> crate::inspect::ModelSummary {
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
