//! `npuopt verify`.

use super::args::VerifyArgs;
use super::progress::Progress;
use super::CliError;
use crate::exit;
use crate::report::verification_json;
use crate::verify::verify_files;

pub fn run(a: VerifyArgs, quiet: bool) -> Result<i32, CliError> {
    let opts = a.check.to_options().map_err(CliError::input)?;
    let step = Progress::new(quiet).step("verifying with tract");
    let report = verify_files(&a.reference, &a.candidate, &opts).map_err(CliError::input)?;
    drop(step);
    if a.json {
        println!("{}", verification_json(&report));
    } else {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
        print!("{}", crate::report::verification_text(&report));
    }
    Ok(if report.passed {
        exit::OK
    } else {
        exit::MISMATCH
    })
}
