//! `npuopt inspect`.

use super::args::InspectArgs;
use super::CliError;
use crate::exit;
use crate::inspect::summarize;

pub fn run(a: InspectArgs) -> Result<i32, CliError> {
    let model = npuopt_ir::import::load(&a.input).map_err(CliError::input)?;
    if a.dump {
        let text = npuopt_ir::dump::dump(&model.graph).map_err(CliError::input)?;
        print!("{text}");
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
