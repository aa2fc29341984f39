//! Round-trip throughput and peak memory: import → export with no passes.
//!
//! ```sh
//! cargo run --release -p npuopt-bench --bin roundtrip -- generate /tmp/big.onnx 100
//! cargo run --release -p npuopt-bench --bin roundtrip -- /tmp/big.onnx bench/models/*.onnx
//! ```
//!
//! Each model is measured in a fresh child process, so one model's peak
//! memory never hides another's. Goal (issue #2): ≥ 1 GB/s of initializer
//! data through import + export, peak RSS ≤ 1.5× the file's size.
//! "GB/s" includes reading the file and writing (and fsyncing) the output;
//! "nosync GB/s" the same without the fsync (the output still written
//! through the page cache); "mem GB/s" is the same import + export from
//! and to memory, without disk. All three are of the file's bytes; the
//! first two are the best of the first run and the median of 3 more
//! (with fsync), and the median of 5 runs (without).
//! Peak RSS is taken before the byte-for-byte check, which reads both files.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use npuopt_bench::{mib, peak_rss_bytes};
use npuopt_ir::export::WriteOptions;
use npuopt_ir::proto::tensor_proto::DataType;
use npuopt_ir::proto::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, ValueInfoProto,
};
use prost::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("generate") => {
            let mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
            generate(Path::new(&args[1]), mb);
        }
        Some("--child") => child(Path::new(&args[1])),
        Some(_) => {
            println!(
                "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9} {:>8}",
                "model",
                "file MiB",
                "init MiB",
                "import s",
                "export s",
                "GB/s",
                "nosync GB/s",
                "mem GB/s",
                "RSS/file"
            );
            let exe = std::env::current_exe().unwrap();
            for path in &args {
                let out = Command::new(&exe)
                    .arg("--child")
                    .arg(path)
                    .output()
                    .unwrap();
                print!("{}", String::from_utf8_lossy(&out.stdout));
                if !out.status.success() {
                    eprintln!("{path}: {}", String::from_utf8_lossy(&out.stderr));
                }
            }
        }
        None => eprintln!("usage: roundtrip generate OUT.onnx [MiB] | roundtrip MODEL.onnx…"),
    }
}

fn child(path: &Path) {
    let file_size = std::fs::metadata(path).unwrap().len();
    let t0 = Instant::now();
    let model = npuopt_ir::import::load(path).unwrap();
    let t1 = Instant::now();
    if std::env::var_os("NPUOPT_BENCH_TRACE").is_some() {
        eprintln!(
            "after import: peak {:.1} MiB",
            mib(peak_rss_bytes().unwrap_or(0))
        );
    }
    let out = std::env::temp_dir().join(format!("npuopt-bench-{}.onnx", std::process::id()));
    model.write(&out, &WriteOptions::default()).unwrap();
    let t2 = Instant::now();
    let init_bytes: u64 = model
        .graph
        .initializers()
        .map(|v| model.graph.value(v).initializer().unwrap().byte_size())
        .sum();
    // Measured before the byte comparison below, which reads both files.
    let rss = peak_rss_bytes().unwrap_or(0);
    drop(model);
    // Import + export again, with and without the fsync: the median of
    // a few runs each (one run of a 100 MB model is too short to time on
    // a shared machine).
    let median = |opts: &WriteOptions, runs: usize| {
        let nosync_out = out.with_extension("again.onnx");
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let model = npuopt_ir::import::load(path).unwrap();
                model.write(&nosync_out, opts).unwrap();
                let s = t.elapsed().as_secs_f64();
                drop(model);
                let _ = std::fs::remove_file(&nosync_out);
                s
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[runs / 2]
    };
    let nosync = WriteOptions {
        skip_sync: true,
        ..Default::default()
    };
    let without_sync = median(&nosync, 5);
    let with_sync = median(&WriteOptions::default(), 3);
    // The same work without the disk: decode from memory, encode to memory.
    let buffer = Bytes::from(std::fs::read(path).unwrap());
    let t3 = Instant::now();
    let model = npuopt_ir::import::from_bytes(buffer, None).unwrap();
    let encoded = model.to_bytes().unwrap();
    let in_memory = t3.elapsed().as_secs_f64();
    drop((model, encoded));
    let same = std::fs::read(&out).unwrap() == std::fs::read(path).unwrap();
    let _ = std::fs::remove_file(&out);
    let total = with_sync.min((t2 - t0).as_secs_f64());
    let name = path.file_name().unwrap().to_string_lossy();
    println!(
        "{:<40} {:>9.1} {:>9.1} {:>9.3} {:>9.3} {:>9.2} {:>11.2} {:>9.2} {:>8.2}{}",
        name,
        mib(file_size),
        mib(init_bytes),
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        file_size as f64 / total / 1e9,
        file_size as f64 / without_sync / 1e9,
        file_size as f64 / in_memory / 1e9,
        rss as f64 / file_size as f64,
        if same { "" } else { "  (bytes differ)" }
    );
}

/// A chain of 1×1 convs whose weights add up to `mb` MiB.
fn generate(path: &Path, mb: usize) {
    let channels = 512i64; // 512×512 f32 weights = 1 MiB per layer
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut prev = "x".to_string();
    let mut state = 0x2545F4914F6CDD1Du64;
    for i in 0..mb {
        let w = format!("w{i}");
        let raw: Vec<u8> = (0..channels * channels)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5).to_le_bytes()
            })
            .collect();
        inits.push(TensorProto {
            name: Some(w.clone()),
            dims: vec![channels, channels, 1, 1],
            data_type: Some(DataType::Float as i32),
            raw_data: Some(Bytes::from(raw)),
            ..Default::default()
        });
        let out = format!("y{i}");
        nodes.push(NodeProto {
            name: Some(format!("conv{i}")),
            op_type: Some("Conv".into()),
            input: vec![prev.clone(), w],
            output: vec![out.clone()],
            attribute: vec![AttributeProto {
                name: Some("kernel_shape".into()),
                r#type: Some(AttributeType::Ints as i32),
                ints: vec![1, 1],
                ..Default::default()
            }],
            ..Default::default()
        });
        prev = out;
    }
    let vi = |n: &str| ValueInfoProto {
        name: Some(n.into()),
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: Some(8),
        producer_name: Some("npuopt-bench".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("big".into()),
            node: nodes,
            initializer: inits,
            input: vec![vi("x")],
            output: vec![vi(&prev)],
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(path, m.encode_to_vec()).unwrap();
    println!(
        "wrote {} ({:.1} MiB)",
        path.display(),
        mib(std::fs::metadata(path).unwrap().len())
    );
}
