//! Inference latency with tract (single thread, interleaved runs) of models
//! that compute the same function: a training graph, npuopt's optimization
//! of it, and the framework's own deploy export.
//!
//! ```sh
//! # optimize first, e.g.:
//! npuopt optimize bench/models/mobileone_s0_ts.onnx -o /tmp/mobileone_s0_opt.onnx
//! cargo run -p npuopt-bench --features latency --bin latency -- 30 \
//!     bench/models/mobileone_s0_ts.onnx /tmp/mobileone_s0_opt.onnx bench/models/mobileone_s0_deploy_ts.onnx
//! ```
//!
//! The first argument is the number of rounds; each round runs every model
//! once, in turn, so drifts in machine load hit all models alike. Prints the
//! median and the ratio to the first model. tract's kernels are what runs,
//! so the dev profile (dependencies at opt-level 3) measures the same thing
//! as a release build.

use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let paths = &args[1..];
    let mut plans = Vec::new();
    for p in paths {
        let model = tract_onnx::onnx()
            .model_for_path(p)?
            .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())?
            .into_optimized()?
            .into_runnable()?;
        plans.push(model);
    }
    let input: Tensor =
        tract_ndarray::Array4::<f32>::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
            ((c * 7 + y * 3 + x) % 17) as f32 / 17.0 - 0.5
        })
        .into();
    for plan in &plans {
        for _ in 0..3 {
            plan.run(tvec!(input.clone().into()))?;
        }
    }
    let mut times = vec![Vec::with_capacity(rounds); plans.len()];
    for _ in 0..rounds {
        for (i, plan) in plans.iter().enumerate() {
            let t = Instant::now();
            plan.run(tvec!(input.clone().into()))?;
            times[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    println!("{:<48} {:>10} {:>10}", "model", "median ms", "vs first");
    for (p, m) in paths.iter().zip(&medians) {
        println!("{:<48} {:>10.2} {:>9.2}×", p, m, medians[0] / m);
    }
    Ok(())
}
