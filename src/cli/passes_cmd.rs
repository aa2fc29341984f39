//! `npuopt passes`.

use super::args::PassesArgs;
use super::CliError;
use crate::exit;

pub fn run(a: PassesArgs) -> Result<i32, CliError> {
    let passes = npuopt_passes::registry::all_passes();
    if a.json {
        let list: Vec<serde_json::Value> = passes
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "description": p.description,
                    "default": p.in_default_pipeline,
                    "needs_target": p.needs_target,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "passes": list }));
        return Ok(exit::OK);
    }
    if passes.is_empty() {
        println!("no passes yet (`--passes none` runs none)");
    }
    for p in passes {
        let mark = if p.in_default_pipeline {
            "default"
        } else if p.needs_target {
            "target"
        } else {
            ""
        };
        println!("{:<28} {:<8} {}", p.name, mark, p.description);
    }
    Ok(exit::OK)
}
