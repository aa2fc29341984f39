//! `npuopt targets`: the built-in target descriptions.

use npuopt_targets::{builtin_names, builtin_text, Target};
use serde::Serialize;

use super::args::TargetsArgs;
use super::CliError;
use crate::exit;

#[derive(Serialize)]
struct Row {
    name: String,
    clock_mhz: f64,
    cores: u32,
    macs_per_cycle: u32,
    peak_macs_per_cycle: f64,
    source: String,
}

pub fn run(a: TargetsArgs) -> Result<i32, CliError> {
    match a.name {
        Some(spec) => show(&spec, a.json),
        None => list(a.json),
    }
}

/// The `targets --json` document: one row per built-in target.
pub fn targets_json() -> Result<serde_json::Value, CliError> {
    serde_json::to_value(rows()?).map_err(CliError::input)
}

fn rows() -> Result<Vec<Row>, CliError> {
    builtin_names()
        .into_iter()
        .map(|n| {
            let t = Target::builtin(n).map_err(CliError::input)?;
            Ok(Row {
                name: t.target.name.clone(),
                clock_mhz: t.target.clock_mhz,
                cores: t.target.cores,
                macs_per_cycle: t.compute.macs_per_cycle,
                peak_macs_per_cycle: t.peak_macs_per_cycle(),
                source: t.target.source.clone(),
            })
        })
        .collect()
}

fn list(json: bool) -> Result<i32, CliError> {
    let rows = rows()?;
    if json {
        let text = serde_json::to_string_pretty(&rows).map_err(CliError::input)?;
        println!("{text}");
        return Ok(exit::OK);
    }
    println!(
        "{:<14} {:>9} {:>11}  source",
        "target", "clock", "peak MAC/c"
    );
    for r in &rows {
        println!(
            "{:<14} {:>5} MHz {:>11}  {}",
            r.name, r.clock_mhz, r.peak_macs_per_cycle, r.source
        );
    }
    println!("\n`npuopt targets NAME` shows one in full; `inspect MODEL --target NAME|FILE.toml` estimates a model's cost.");
    Ok(exit::OK)
}

fn show(spec: &str, json: bool) -> Result<i32, CliError> {
    let t = Target::resolve(spec).map_err(CliError::input)?;
    if json {
        let text = serde_json::to_string_pretty(&t).map_err(CliError::input)?;
        println!("{text}");
    } else if let Some(text) = builtin_text(spec) {
        // The built-in file itself: its comments cite the sources.
        print!("{text}");
    } else {
        print!("{}", t.to_toml_string());
        if t.quantization.is_none() {
            println!("\n# [quantization] not stated: no quantization pass joins this target's pipeline (run one by name: --passes +equalize-ranges)");
        }
    }
    Ok(exit::OK)
}
