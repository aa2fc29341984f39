//! Using npuopt from a Rust deployment pipeline, without a shell.
//!
//! ```sh
//! cargo run --example optimize_in_pipeline -- fixtures/real/mobileone_ts.onnx /tmp/mobileone.opt.onnx
//! ```

use npuopt::{load, optimize_model, OptimizeError, OptimizeOptions, VerifyOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let input = args
        .first()
        .map(String::as_str)
        .unwrap_or("fixtures/real/mobileone_ts.onnx");
    let output = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("/tmp/npuopt-example.onnx");

    let model = load(input)?;
    let before = npuopt::summarize(&model);
    let opts = OptimizeOptions {
        passes: npuopt::default_passes(),
        verify: Some(VerifyOptions::default()),
        ..Default::default()
    };
    let optimized = match optimize_model(model, &opts) {
        Ok(o) => o,
        Err(OptimizeError::Mismatch { summary, .. }) => {
            eprintln!("not shipping: {summary}");
            std::process::exit(3);
        }
        Err(e) => return Err(e.into()),
    };
    optimized
        .model
        .write(output.as_ref(), &Default::default())?;

    for pass in &optimized.outcome.pipeline.passes {
        println!("{:<22} {:>4} rewrites", pass.pass, pass.rewrites);
    }
    let v = optimized
        .outcome
        .verification
        .as_ref()
        .expect("verification ran");
    println!(
        "{input}: {} → {} nodes; verified (max abs err {:.2e}); wrote {output}",
        before.nodes,
        optimized.summary.nodes,
        v.outputs.iter().map(|o| o.max_abs_err).fold(0.0, f64::max)
    );
    Ok(())
}
