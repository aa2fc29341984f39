//! `npuopt passes`.

use super::args::PassesArgs;
use super::CliError;
use crate::exit;

/// The `passes --json` document.
pub fn passes_json() -> serde_json::Value {
    let list: Vec<serde_json::Value> = npuopt_passes::registry::all_passes()
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "description": p.description,
                "default": p.in_default_pipeline,
                "needs_target": p.needs_target,
                "for_quantization": p.for_quantization,
            })
        })
        .collect();
    serde_json::json!({ "passes": list })
}

pub fn run(a: PassesArgs) -> Result<i32, CliError> {
    if a.json {
        println!("{}", passes_json());
        return Ok(exit::OK);
    }
    let passes = npuopt_passes::registry::all_passes();
    if passes.is_empty() {
        println!("no passes yet (`--passes none` runs none)");
    }
    for p in passes {
        let mark = if p.in_default_pipeline {
            "default"
        } else if p.needs_target {
            "target"
        } else if p.for_quantization {
            "int8"
        } else {
            ""
        };
        println!("{:<28} {:<8} {}", p.name, mark, p.description);
    }
    Ok(exit::OK)
}
