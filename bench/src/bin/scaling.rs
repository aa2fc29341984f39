//! How the default pipeline's time grows with graph size.
//!
//! ```sh
//! cargo run --release -p npuopt-bench --bin scaling -- 10000 100000 1000000
//! ```
//!
//! `scaling --write OUT.onnx N` writes the `N`-node model instead.
//!
//! Builds a chain of (Conv → BatchNormalization → Relu) blocks with a
//! residual Add every fourth block, `n` nodes in all, and times import,
//! the default pipeline (no verification) and export, separately: each the
//! median of at least 5 runs (`NPUOPT_BENCH_RUNS`), and of as many as fit
//! in two seconds. Goal (issue #12): 10k → 100k and 100k → 1M each within
//! 12×, and 1M nodes in under 10 s. The CPU-time column (the process's,
//! median of the same runs) is the steadier figure on a shared machine.
//! Under each size, the passes phase split by pass: each pass's CPU time
//! (the thread's, summed over the fixed-point iterations, median of the
//! runs) in µs per input node, and `manager` for the rest of the phase
//! (validation and type inference after each pass, the report): a pass
//! whose figure grows with the size is the one that scales worse than
//! linearly.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use npuopt_bench::mib;
use npuopt_ir::proto::attribute_proto::AttributeType;
use npuopt_ir::proto::tensor_proto::DataType;
use npuopt_ir::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
    ValueInfoProto,
};
use npuopt_passes::{Pass, PassContext, PassError};
use prost::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--write") {
        // The benchmark's model as a file, to profile the command line on.
        let (Some(path), Some(n)) = (args.get(2), args.get(3).and_then(|n| n.parse().ok())) else {
            eprintln!("usage: scaling --write OUT.onnx NODES");
            std::process::exit(2);
        };
        std::fs::write(path, chain(n).encode_to_vec()).unwrap();
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    println!("default pipeline: {}", passes.join(", "));
    println!(
        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>5}",
        "nodes",
        "MiB",
        "import s",
        "passes s",
        "export s",
        "total s",
        "cpu s",
        "after",
        "µs/node",
        "runs"
    );
    let mut prev: Option<(usize, f64, f64)> = None;
    // A warm-up run of the smallest size, not reported: the first run in a
    // process also pays for the allocator's first page faults.
    let warm = Bytes::from(chain(sizes[0]).encode_to_vec());
    let mut m = npuopt_ir::import::from_bytes(warm, None).unwrap();
    npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
    drop(m);
    let min_runs: usize = std::env::var("NPUOPT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for n in sizes {
        let bytes = Bytes::from(chain(n).encode_to_vec());
        let size = bytes.len() as u64;
        // Each phase's median over at least `min_runs` runs, and over as
        // many as fit in two seconds: a 10k-node run is too short to time
        // once on a shared machine.
        let mut runs: Vec<[f64; 4]> = Vec::new();
        // Per run: each pass's thread CPU seconds, then the whole phase's.
        let mut per_pass: Vec<Vec<f64>> = Vec::new();
        let mut after = 0;
        let started = Instant::now();
        while runs.len() < min_runs || started.elapsed().as_secs_f64() < 2.0 {
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            let mut model = npuopt_ir::import::from_bytes(bytes.clone(), None).unwrap();
            let t1 = Instant::now();
            let spent: Vec<Rc<Cell<f64>>> = passes.iter().map(|_| Rc::default()).collect();
            let timed: Vec<Box<dyn Pass>> = passes
                .iter()
                .zip(&spent)
                .map(|(name, spent)| {
                    Box::new(Timed {
                        inner: npuopt_passes::registry::pass_by_name(name).unwrap(),
                        spent: spent.clone(),
                    }) as Box<dyn Pass>
                })
                .collect();
            let p0 = thread_cpu_seconds();
            let report =
                npuopt_passes::manager::run_passes(&mut model, &timed, &mut Default::default())
                    .unwrap();
            let p1 = thread_cpu_seconds();
            per_pass.push(spent.iter().map(|s| s.get()).chain([p1 - p0]).collect());
            if std::env::var_os("NPUOPT_BENCH_TRACE").is_some() && runs.is_empty() {
                eprintln!(
                    "iterations {}, {} changes, {} skips, {} decisions: {:?}",
                    report.iterations,
                    report.changes.len(),
                    report.skips.len(),
                    report.decisions.len(),
                    report.passes
                );
            }
            let t2 = Instant::now();
            let out = model.to_bytes().unwrap();
            let t3 = Instant::now();
            let c3 = cpu_seconds();
            after = model.graph.node_count();
            runs.push([
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
                c3 - c0,
            ]);
            drop((out, report, model));
        }
        let median = |f: &dyn Fn(&[f64; 4]) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let total = median(&|r| r[0] + r[1] + r[2]);
        let cpu = median(&|r| r[3]);
        println!(
            "{:>9} {:>9.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9} {:>10.2} {:>5}",
            n,
            mib(size),
            median(&|r| r[0]),
            median(&|r| r[1]),
            median(&|r| r[2]),
            total,
            cpu,
            after,
            total * 1e6 / n as f64,
            runs.len()
        );
        if let Some((n0, t0, c0)) = prev {
            println!(
                "          {}× the nodes of the previous size took {:.1}× its time ({:.1}× its CPU time)",
                n / n0,
                total / t0,
                cpu / c0
            );
        }
        prev = Some((n, total, cpu));
        let pass_median = |i: usize| {
            let mut v: Vec<f64> = per_pass.iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2] * 1e6 / n as f64
        };
        let mut line: Vec<String> = passes
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name} {:.2}", pass_median(i)))
            .collect();
        // The phase less its passes, median of the per-run differences.
        let mut rest: Vec<f64> = per_pass
            .iter()
            .map(|r| r[passes.len()] - r[..passes.len()].iter().sum::<f64>())
            .collect();
        rest.sort_by(f64::total_cmp);
        line.push(format!(
            "manager {:.2}",
            rest[rest.len() / 2] * 1e6 / n as f64
        ));
        line.push(format!("(phase {:.2})", pass_median(passes.len())));
        println!("          passes, CPU µs/node: {}", line.join(", "));
    }
}

/// A pass that adds its thread CPU time to `spent`.
struct Timed {
    inner: Box<dyn Pass>,
    spent: Rc<Cell<f64>>,
}

impl Pass for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn description(&self) -> &'static str {
        self.inner.description()
    }
    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let t0 = thread_cpu_seconds();
        let result = self.inner.run(model, cx);
        self.spent.set(self.spent.get() + thread_cpu_seconds() - t0);
        result
    }
}

/// Seconds of CPU time this thread has used; 0 where the clock is not
/// available.
fn thread_cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill in.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    0.0
}

/// Seconds of CPU time this process has used (all threads); 0 where the
/// clock is not available.
fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill in.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    0.0
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], value: f32) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(Bytes::from(
            (0..n)
                .flat_map(|i| (value + i as f32 * 1e-3).to_le_bytes())
                .collect::<Vec<u8>>(),
        )),
        ..Default::default()
    }
}

/// About `n` nodes: blocks of Conv → BN → Relu (3 nodes) on 4 channels, 8×8,
/// with an Add joining every fourth block's input to its output.
fn chain(n: usize) -> ModelProto {
    let c = 4i64;
    let mut nodes = Vec::with_capacity(n);
    let mut inits = Vec::new();
    let mut x = "x".to_string();
    let mut skip = x.clone();
    let mut i = 0;
    while nodes.len() + 4 <= n {
        let p = format!("b{i}");
        inits.push(tensor(&format!("{p}.w"), &[c, c, 1, 1], 0.1));
        for (k, v) in [("g", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)] {
            inits.push(tensor(&format!("{p}.{k}"), &[c], v));
        }
        let node = |op: &str, name: &str, inputs: Vec<String>, out: &str| NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: inputs,
            output: vec![out.into()],
            ..Default::default()
        };
        let mut conv = node(
            "Conv",
            &format!("{p}.conv"),
            vec![x.clone(), format!("{p}.w")],
            &format!("{p}.c"),
        );
        conv.attribute.push(ints("kernel_shape", &[1, 1]));
        nodes.push(conv);
        nodes.push(node(
            "BatchNormalization",
            &format!("{p}.bn"),
            ["c", "g", "b", "m", "v"]
                .iter()
                .map(|k| format!("{p}.{k}"))
                .collect(),
            &format!("{p}.n"),
        ));
        nodes.push(node(
            "Relu",
            &format!("{p}.relu"),
            vec![format!("{p}.n")],
            &format!("{p}.r"),
        ));
        x = format!("{p}.r");
        if i % 4 == 3 {
            nodes.push(node(
                "Add",
                &format!("{p}.add"),
                vec![x.clone(), skip.clone()],
                &format!("{p}.a"),
            ));
            x = format!("{p}.a");
            skip = x.clone();
        }
        i += 1;
    }
    let vi = |name: &str| {
        ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(npuopt_ir::proto::type_proto::Value::TensorType(
                npuopt_ir::proto::type_proto::Tensor {
                    elem_type: Some(DataType::Float as i32),
                    shape: Some(npuopt_ir::proto::TensorShapeProto {
                        dim: [1, c, 8, 8]
                            .iter()
                            .map(|&d| npuopt_ir::proto::tensor_shape_proto::Dimension {
                                value: Some(npuopt_ir::proto::tensor_shape_proto::dimension::Value::DimValue(d)),
                                denotation: None,
                            })
                            .collect(),
                    }),
                },
            )),
        }),
        ..Default::default()
    }
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("chain".into()),
            node: nodes,
            initializer: inits,
            input: vec![vi("x")],
            output: vec![vi(&x)],
            ..Default::default()
        }),
        ..Default::default()
    }
}
