//! The default pipeline on one model, without verification: what
//! `bench/compare_simplifiers.py` times against onnxsim and onnxslim.
//!
//! ```sh
//! cargo run --release -p npuopt-bench --bin pipeline -- IN.onnx OUT.onnx
//! ```
//!
//! Prints one line: nodes before → after, seconds for import, passes and
//! export, and peak RSS.

use std::time::Instant;

use npuopt_bench::{mib, peak_rss_bytes};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pipeline IN.onnx OUT.onnx");
        std::process::exit(2);
    };
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let t0 = Instant::now();
    let mut model = npuopt_ir::import::load(input.as_ref()).unwrap();
    let before = model.graph.node_count();
    let t1 = Instant::now();
    npuopt_passes::run_pipeline(&mut model, &passes, Default::default()).unwrap();
    let t2 = Instant::now();
    model.write(output.as_ref(), &Default::default()).unwrap();
    let t3 = Instant::now();
    println!(
        "nodes {} -> {}  import {:.3} s  passes {:.3} s  export {:.3} s  total {:.3} s  peak RSS {:.1} MiB",
        before,
        model.graph.node_count(),
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64(),
        (t3 - t0).as_secs_f64(),
        mib(peak_rss_bytes().unwrap_or(0))
    );
}
