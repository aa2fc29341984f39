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
    if !quiet {
        for s in &outcome.pipeline.passes {
            eprintln!(
                "  {:<22} {:>5} rewrites   nodes {} → {}",
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
            human_bytes(done.input.bytes),
            human_bytes(done.written),
            start.elapsed().as_secs_f64(),
            verified
        );
    }
    Ok(exit::OK)
}
