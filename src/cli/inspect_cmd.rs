//! `npuopt inspect`.

use npuopt_targets::{cost, Estimate, Target};

use super::args::InspectArgs;
use super::CliError;
use crate::exit;
use crate::inspect::summarize;

pub fn run(a: InspectArgs) -> Result<i32, CliError> {
    // Resolve the target first: a bad name fails before the model is read.
    let target = match &a.target {
        Some(spec) => Some(Target::resolve(spec).map_err(CliError::input)?),
        None => None,
    };
    let input_shapes =
        super::check_args::parse_input_shapes_i64(&a.input_shape).map_err(CliError::input)?;
    let mut model = npuopt_ir::import::load(&a.input).map_err(CliError::input)?;
    if !input_shapes.is_empty() {
        npuopt_ir::pin::pin_input_shapes(&mut model.graph, &input_shapes)
            .map_err(CliError::input)?;
    }
    if a.dump {
        let text = npuopt_ir::dump::dump(&model.graph).map_err(CliError::input)?;
        print!("{text}");
        return Ok(exit::OK);
    }
    if a.quant {
        let v = crate::quant_view::view(&model);
        if a.json {
            let text = serde_json::to_string_pretty(&crate::quant_view::view_json(&v))
                .map_err(CliError::input)?;
            println!("{text}");
        } else {
            let scheme = target.as_ref().map(|t| (t.name(), t.quantization.as_ref()));
            print!("{}", crate::quant_view::render(&v, scheme));
        }
        return Ok(exit::OK);
    }
    if let Some(t) = target {
        if !a.json {
            for d in model.graph.disputes() {
                eprintln!("warning: {d}; no rewrite relies on its shape");
            }
        }
        let est = cost::estimate(&model.graph, &t);
        if a.json {
            let mut v = crate::report::estimate_json(&est);
            let disputes: Vec<String> = model
                .graph
                .disputes()
                .iter()
                .map(|d| d.to_string())
                .collect();
            v["disputes"] = serde_json::json!(disputes);
            let text = serde_json::to_string_pretty(&v).map_err(CliError::input)?;
            println!("{text}");
        } else {
            print!("{}", render(&est, &t));
        }
        return Ok(exit::OK);
    }
    let summary = summarize(&model);
    if a.json {
        let text = serde_json::to_string_pretty(&summary).map_err(CliError::input)?;
        println!("{text}");
    } else {
        print!("{summary}");
    }
    Ok(exit::OK)
}

/// `123`, `45.6 k`, `7.89 M`, `1.23 G`.
fn short(n: u64) -> String {
    let x = n as f64;
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1} k", x / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} M", x / 1e6),
        _ => format!("{:.2} G", x / 1e9),
    }
}

/// The per-layer table, the totals (labelled as estimates) and the flags.
fn render(e: &Estimate, t: &Target) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = e
        .layers
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 48);
    let _ = writeln!(
        s,
        "target: {} ({} MHz, {} MACs/cycle peak); cycles are estimates",
        e.target, e.clock_mhz, e.peak_macs_per_cycle
    );
    let _ = writeln!(
        s,
        "{:<w$} {:<18} {:>9} {:>9} {:>13} {:>6} {:<8} supported",
        "layer", "op", "MACs", "executed", "cycles (est)", "util", "bound"
    );
    for l in &e.layers {
        let name: String = if l.name.chars().count() > w {
            let tail: String = l.name.chars().rev().take(w - 1).collect();
            format!("…{}", tail.chars().rev().collect::<String>())
        } else {
            l.name.clone()
        };
        let util = if l.macs > 0 {
            format!("{:.0}%", l.utilization * 100.0)
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "{:<w$} {:<18} {:>9} {:>9} {:>13} {:>6} {:<8} {}",
            name,
            l.op,
            short(l.macs),
            short(l.executed_macs),
            short(l.cycles),
            util,
            l.bound.as_str(),
            if l.supported { "yes" } else { "no (CPU)" }
        );
    }
    let _ = writeln!(
        s,
        "\ntotal (estimate): {} cycles = {:.3} ms at {} MHz; {} MACs ({} executed), utilisation {:.0}%",
        short(e.total_cycles),
        e.latency_ms,
        e.clock_mhz,
        short(e.macs),
        short(e.executed_macs),
        e.utilization * 100.0
    );
    s.push_str(&super::notes::estimate_notes(e));
    if !t.target.assumptions.is_empty() {
        let _ = writeln!(
            s,
            "target assumptions: {} (see `npuopt targets {}`)",
            t.target.assumptions.len(),
            t.target.name
        );
    }
    if e.flags.is_empty() {
        let _ = writeln!(s, "no single loss above 1% of the total");
        return s;
    }
    let _ = writeln!(s, "\nbiggest losses (estimates):");
    const SHOWN: usize = 15;
    for f in e.flags.iter().take(SHOWN) {
        let share = f.lost_cycles as f64 / e.total_cycles.max(1) as f64 * 100.0;
        let _ = write!(
            s,
            "  {}: {} — {} cycles lost ({:.1}%)",
            f.layer,
            f.message,
            short(f.lost_cycles),
            share
        );
        match f.rewrite {
            Some(r) => {
                let _ = writeln!(s, " → {r}");
            }
            None => s.push('\n'),
        }
    }
    if e.flags.len() > SHOWN {
        let _ = writeln!(s, "  … {} more (see --json)", e.flags.len() - SHOWN);
    }
    s
}
