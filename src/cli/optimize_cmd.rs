//! `npuopt optimize`: runs [`super::optimize_job`] and prints its summary.

use std::time::Instant;

use super::args::OptimizeArgs;
use super::optimize_job::{execute, Input, JobError, Output};
use super::CliError;
use crate::exit;
use crate::inspect::human_bytes;
use crate::optimize::Cancel;

pub fn run(a: OptimizeArgs, quiet: bool) -> Result<i32, CliError> {
    let start = Instant::now();
    let done = match execute(
        &a,
        Input::File(&a.input),
        Output::File(&a.output),
        quiet,
        false,
        Cancel::never(),
    ) {
        Ok(done) => done,
        Err(JobError::Cli(e)) => return Err(e),
        Err(JobError::Mismatch(e)) => {
            eprintln!("error: {e}");
            eprintln!("nothing was written");
            return Ok(exit::MISMATCH);
        }
        Err(JobError::Cancelled) => {
            return Err(CliError::input(anyhow::anyhow!(
                "cancelled; nothing was written"
            )))
        }
    };
    let (outcome, before, after) = (&done.outcome, &done.before, &done.after);
    for d in &before.disputes {
        eprintln!("warning: {d}; no rewrite relies on its shape");
    }
    if let (true, Some(reason)) = (quiet, &outcome.unverified) {
        // The one line -q still prints: the output was written unchecked.
        eprintln!("NOT VERIFIED: {reason}");
    }
    if !quiet {
        if !outcome.pinned_symbols.is_empty() {
            let b: Vec<String> = outcome
                .pinned_symbols
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            eprintln!("  pinned symbolic dims: {}", b.join(", "));
        }
        for s in &outcome.pipeline.passes {
            // A pass that left matches alone says so here, not only in
            // a report: "0 rewrites" alone reads as "nothing to do".
            let skipped = outcome
                .pipeline
                .skips
                .iter()
                .filter(|k| k.pass == s.pass)
                .count();
            let skipped = match skipped {
                0 => String::new(),
                n => format!("   {n} not applied (reasons: --report FILE)"),
            };
            eprintln!(
                "  {:<22} {:>5} rewrites   nodes {} → {}{skipped}",
                s.pass, s.rewrites, s.nodes_before, s.nodes_after
            );
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
                            .map(|l| l
                                .note
                                .trim_start_matches("unsized: ")
                                .trim_end_matches(" (not costed)"))
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
                for line in crate::report::verification_text(v).lines() {
                    eprintln!("  {line}");
                }
                let worst = v.outputs.iter().map(|o| o.max_abs_err).fold(0.0, f64::max);
                let ratio = v.outputs.iter().filter_map(|o| o.ratio).fold(0.0, f64::max);
                match v.reference {
                    crate::verify::Reference::Fixed => {
                        format!("verified with tract (max abs err {worst:.2e})")
                    }
                    _ => format!(
                        "verified with tract (max abs err {worst:.2e}; at most {ratio:.2}× the input's own noise floor)"
                    ),
                }
            }
            None => match &outcome.unverified {
                Some(reason) => format!("NOT VERIFIED: {reason}"),
                None => "NOT verified (--no-verify)".to_string(),
            },
        };
        eprintln!(
            "{} → {}: nodes {} → {}, parameters {} → {}, MACs {} → {} (executed {} → {}), {} → {} in {:.2} s; {}",
            a.input.display(),
            a.output.display(),
            before.nodes,
            after.nodes,
            before.parameters,
            after.parameters,
            before.macs,
            after.macs,
            before.dense_macs,
            after.dense_macs,
            size_text(done.input.bytes, done.input.external_bytes),
            size_text(done.written.model_bytes, done.written.external_bytes),
            start.elapsed().as_secs_f64(),
            verified
        );
    }
    Ok(exit::OK)
}

/// A model's size for the summary line: the `.onnx` file, and its
/// external-data side file when there is one (a dynamo export's weights
/// live there: its `.onnx` alone says little).
fn size_text(model_bytes: u64, external_bytes: u64) -> String {
    if external_bytes == 0 {
        human_bytes(model_bytes)
    } else {
        format!(
            "{} (+ {} external data)",
            human_bytes(model_bytes),
            human_bytes(external_bytes)
        )
    }
}
