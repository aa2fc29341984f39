//! The default pipeline on one model, without verification: what
//! `bench/compare_simplifiers.py` times against onnxsim and onnxslim.
//!
//! ```sh
//! cargo run --release -p npuopt-bench --bin pipeline -- [--no-sync] [-q] IN.onnx OUT.onnx
//! ```
//!
//! Does what `npuopt -q optimize IN -o OUT --no-verify` does — the input
//! memory-mapped, validated, the default passes without change-note hashes,
//! the output written atomically — except the command's summaries of the
//! model before and after. `--no-sync` writes without the fsync
//! (`WriteOptions::skip_sync`): the command always syncs, `cp` and the
//! Python tools do not, so this is the like-for-like figure. Prints one
//! line (none with `-q`): nodes before → after, seconds for import, passes
//! and export, and peak RSS.

use std::path::Path;
use std::time::Instant;

use npuopt_bench::{mib, peak_rss_bytes};
use npuopt_ir::export::WriteOptions;
use npuopt_passes::PipelineOptions;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut flag = |f: &str| {
        let had = args.iter().any(|a| a == f);
        args.retain(|a| a != f);
        had
    };
    let no_sync = flag("--no-sync");
    let quiet = flag("-q");
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pipeline [--no-sync] [-q] IN.onnx OUT.onnx");
        std::process::exit(2);
    };
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let t0 = Instant::now();
    let input = Path::new(input);
    let bytes = npuopt_ir::mapped::read(input).unwrap();
    let mut model = npuopt_ir::import::from_bytes(bytes, input.parent()).unwrap();
    model.graph.validate().unwrap();
    let before = model.graph.node_count();
    let t1 = Instant::now();
    let opts = PipelineOptions {
        skip_note_hashes: true,
        ..Default::default()
    };
    npuopt_passes::run_pipeline(&mut model, &passes, opts).unwrap();
    let t2 = Instant::now();
    let write = WriteOptions {
        skip_sync: no_sync,
        ..Default::default()
    };
    model.write(output.as_ref(), &write).unwrap();
    let t3 = Instant::now();
    if quiet {
        return;
    }
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
