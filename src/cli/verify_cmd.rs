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
        for o in &report.outputs {
            println!(
                "{} {:<24} max abs err {:.3e}  rel {:.3e}  cosine {:.8}  (max |ref| {:.3e})",
                if o.passed { "ok      " } else { "MISMATCH" },
                o.name,
                o.max_abs_err,
                o.max_rel_err,
                o.cosine,
                o.max_abs_ref
            );
        }
        println!(
            "{} ({} sample{}, seed {}, rtol {:e}, atol {:e})",
            if report.passed {
                "outputs match"
            } else {
                "outputs differ"
            },
            report.samples,
            if report.samples == 1 { "" } else { "s" },
            report.seed,
            opts.rtol,
            opts.atol
        );
    }
    Ok(if report.passed {
        exit::OK
    } else {
        exit::MISMATCH
    })
}
