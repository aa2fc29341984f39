//! The noise verdict on detection-style, TopK and fp16 models: the default
//! pipeline's output verifies (exit 0), and broken models — one conv's
//! weights off by 1 %, a bias dropped, two output channels swapped, a wrong
//! BatchNorm epsilon — are caught (exit 3).
//!
//! The fixtures are the committed exports of
//! `fixtures/scripts/make_deploy_models.py`: `yolov8_ts.onnx` (Ultralytics
//! C2f + SPPF + Detect with DFL at width 1/16, boxes in pixels, BN
//! unfused), `topk_head_ts.onnx` (a TopK over scores, gathered boxes in
//! pixels) and `mobilenetv2_fp16.onnx` (f16 weights, inputs and outputs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bytes::Bytes;
use npuopt::ir::proto::{ModelProto, NodeProto, TensorProto};
use prost::Message;

fn real(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/real")
        .join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

fn npuopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_npuopt"))
        .args(args)
        .output()
        .expect("npuopt runs")
}

fn read(path: &Path) -> ModelProto {
    ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
}

fn write(m: &ModelProto, path: &Path) {
    std::fs::write(path, m.encode_to_vec()).unwrap();
}

fn op(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or("")
}

/// The index of the initializer called `name`.
fn init_ix(m: &ModelProto, name: &str) -> usize {
    let g = m.graph.as_ref().unwrap();
    g.initializer
        .iter()
        .position(|t| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no initializer '{name}'"))
}

/// Indices of the Conv nodes whose weight is an initializer (and, with
/// `bias`, which have a bias initializer).
fn convs(m: &ModelProto, bias: bool) -> Vec<usize> {
    let g = m.graph.as_ref().unwrap();
    let inits: Vec<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    g.node
        .iter()
        .enumerate()
        .filter(|(_, n)| op(n) == "Conv" && inits.contains(&n.input[1].as_str()))
        .filter(|(_, n)| !bias || n.input.get(2).is_some_and(|b| inits.contains(&b.as_str())))
        .map(|(i, _)| i)
        .collect()
}

/// The element size of a float tensor (f32: 4, f16: 2).
fn elem_size(t: &TensorProto) -> usize {
    match t.data_type {
        Some(1) => 4,
        Some(10) => 2,
        other => panic!("unexpected data type {other:?}"),
    }
}

fn raw(t: &TensorProto) -> Vec<u8> {
    match &t.raw_data {
        Some(r) if !r.is_empty() => r.to_vec(),
        _ if !t.float_data.is_empty() => {
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        _ => t
            .int32_data
            .iter()
            .flat_map(|v| (*v as u16).to_le_bytes())
            .collect(),
    }
}

fn set_raw(t: &mut TensorProto, data: Vec<u8>) {
    t.float_data.clear();
    t.int32_data.clear();
    t.raw_data = Some(Bytes::from(data));
}

fn f16_to_f32(h: u16) -> f32 {
    let (s, e, m) = (
        (h >> 15) as u32,
        ((h >> 10) & 0x1f) as u32,
        (h & 0x3ff) as u32,
    );
    let v = if e == 0 {
        m as f32 * 2f32.powi(-24)
    } else {
        (1.0 + m as f32 / 1024.0) * 2f32.powi(e as i32 - 15)
    };
    if s == 1 {
        -v
    } else {
        v
    }
}

/// Nearest f16 (normal range; what the mutations need).
fn f32_to_f16(v: f32) -> u16 {
    let s = if v < 0.0 { 0x8000 } else { 0 };
    let a = v.abs();
    if a < 2f32.powi(-14) {
        return s | (a / 2f32.powi(-24)).round() as u16;
    }
    let e = a.log2().floor() as i32;
    let m = ((a / 2f32.powi(e) - 1.0) * 1024.0).round() as u32;
    let (e, m) = if m == 1024 { (e + 1, 0) } else { (e, m) };
    s | (((e + 15) as u16) << 10) | m as u16
}

/// Multiplies every element of an f32 or f16 tensor by `k`.
fn scale(t: &mut TensorProto, k: f32) {
    let data = raw(t);
    let out: Vec<u8> = match elem_size(t) {
        4 => data
            .chunks_exact(4)
            .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) * k).to_le_bytes())
            .collect(),
        _ => data
            .chunks_exact(2)
            .flat_map(|c| {
                f32_to_f16(f16_to_f32(u16::from_le_bytes([c[0], c[1]])) * k).to_le_bytes()
            })
            .collect(),
    };
    set_raw(t, out);
}

/// Swaps output channels 0 and 1 of a tensor whose first dim is the
/// output channel.
fn swap_channels(t: &mut TensorProto) {
    let per = t.dims[1..].iter().product::<i64>() as usize * elem_size(t);
    let mut data = raw(t);
    let (a, b) = data.split_at_mut(per);
    a.swap_with_slice(&mut b[..per]);
    set_raw(t, data);
}

enum Mutation {
    /// The middle conv's weights times this factor.
    Weight(f32),
    /// The middle conv with a bias loses it.
    DropBias,
    /// Output channels 0 and 1 of the middle conv (weights and bias).
    Swap,
    /// Every BatchNormalization's epsilon set to this value.
    Epsilon(f32),
}

fn mutate(m: &mut ModelProto, mutation: &Mutation) {
    let with_bias = matches!(mutation, Mutation::DropBias | Mutation::Swap);
    let cs = convs(m, with_bias);
    let conv = match mutation {
        Mutation::Epsilon(_) => 0,
        _ => *cs.get(cs.len() / 2).expect("a conv to mutate"),
    };
    match mutation {
        Mutation::Weight(k) => {
            let w = m.graph.as_ref().unwrap().node[conv].input[1].clone();
            let ix = init_ix(m, &w);
            scale(&mut m.graph.as_mut().unwrap().initializer[ix], *k);
        }
        Mutation::DropBias => {
            m.graph.as_mut().unwrap().node[conv].input.truncate(2);
        }
        Mutation::Swap => {
            let n = m.graph.as_ref().unwrap().node[conv].clone();
            for name in &n.input[1..3] {
                let ix = init_ix(m, name);
                swap_channels(&mut m.graph.as_mut().unwrap().initializer[ix]);
            }
        }
        Mutation::Epsilon(eps) => {
            let g = m.graph.as_mut().unwrap();
            let mut seen = 0;
            for n in g.node.iter_mut().filter(|n| op(n) == "BatchNormalization") {
                seen += 1;
                n.attribute.retain(|a| a.name.as_deref() != Some("epsilon"));
                n.attribute.push(npuopt::ir::proto::AttributeProto {
                    name: Some("epsilon".into()),
                    r#type: Some(1),
                    f: Some(*eps),
                    ..Default::default()
                });
            }
            assert!(seen > 0, "no BatchNormalization to mutate");
        }
    }
}

/// `optimize` with the default pipeline verifies the fixture (exit 0);
/// each mutation of its output (or, for the BN epsilon, of the input)
/// fails `verify` with exit 3.
fn check(fixture: &str, mutations: &[Mutation]) {
    let (dir, input, out, stderr) = optimize_fixture(fixture);
    assert!(stderr.contains("noise floor"), "{stderr}");
    let ok = npuopt(&[
        "verify",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(ok.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    for o in json["outputs"].as_array().unwrap() {
        if let Some(ratio) = o["ratio"].as_f64() {
            assert!(ratio <= json["noise_factor"].as_f64().unwrap(), "{o}");
        }
    }

    for (i, mutation) in mutations.iter().enumerate() {
        let base = match mutation {
            Mutation::Epsilon(_) => &input,
            _ => &out,
        };
        let mut m = read(base);
        mutate(&mut m, mutation);
        let bad = dir.path().join(format!("bad{i}.onnx"));
        write(&m, &bad);
        let done = npuopt(&["verify", input.to_str().unwrap(), bad.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert_eq!(
            done.status.code(),
            Some(3),
            "{fixture}, mutation {i}: {stdout}{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(stdout.contains("MISMATCH"), "{stdout}");
    }
}

#[test]
fn yolo_head_with_pixel_outputs_verifies_and_every_mutation_is_caught() {
    // Ultralytics' BN epsilon is 1e-3; 1e-5 is the PyTorch default a
    // converter might assume.
    check(
        "yolov8_ts.onnx",
        &[
            Mutation::Weight(1.01),
            Mutation::DropBias,
            Mutation::Swap,
            Mutation::Epsilon(1e-5),
        ],
    );
}

#[test]
fn topk_head_verifies_and_every_mutation_is_caught() {
    check(
        "topk_head_ts.onnx",
        &[
            Mutation::Weight(1.01),
            Mutation::DropBias,
            Mutation::Swap,
            Mutation::Epsilon(1e-3),
        ],
    );
}

#[test]
fn fp16_model_verifies_and_mutations_above_its_precision_are_caught() {
    // f16 resolves 2⁻¹⁰ ≈ 1e-3 per operation: folding BN exactly and
    // rounding once moves this model's output by 7.0e-3 (max |ref| 0.40),
    // and scaling one conv by 1.01 by 1.5e-2 — the same order, so a 1 %
    // change is below what an f16 model can tell from its own rounding.
    // Changes above the model's precision are caught: a 10 % weight
    // change, a dropped bias, swapped channels, and an epsilon of 0.1
    // where the model has 1e-5 (an epsilon of 1e-3 moves the output by
    // 9.6e-5, a hundredth of the model's own noise).
    check(
        "mobilenetv2_fp16.onnx",
        &[
            Mutation::Weight(1.10),
            Mutation::DropBias,
            Mutation::Swap,
            Mutation::Epsilon(0.1),
        ],
    );
}

#[test]
fn fp16_verification_runs_in_f64_and_says_so() {
    let (_dir, input, out, _) = optimize_fixture("mobilenetv2_fp16.onnx");
    let v = npuopt(&[
        "verify",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(json["reference"], "f64-low-precision", "{json}");
    let o = &json["outputs"][0];
    let floor = o["noise_floor"].as_f64().unwrap();
    // The floor is at f16's scale, not f32's.
    assert!(floor > 1e-3 * 0.1, "{o}");
    assert_eq!(o["verdict"], "within noise");
}

#[test]
fn a_model_that_cannot_be_verified_says_what_to_do_and_allow_unverified_writes_it_marked() {
    // Symbolic height and width: no shape to run tract at.
    let dir = tempfile::tempdir().unwrap();
    let input = real("yolov8_dynhw_ts.onnx");
    let out = dir.path().join("opt.onnx");
    let args = [
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let done = npuopt(&args);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert!(!out.exists());
    assert!(
        stderr.contains("--no-verify") && stderr.contains("--input-shape"),
        "{stderr}"
    );
    assert!(stderr.contains("'height'"), "names the dim: {stderr}");
    assert_eq!(
        stderr.matches("verification could not run").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let report = dir.path().join("r.json");
    let mut args = args.to_vec();
    args.extend(["--allow-unverified", "--report", report.to_str().unwrap()]);
    let done = npuopt(&args);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("NOT VERIFIED: "), "{stderr}");
    let m = read(&out);
    let note = m
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some("npuopt.verification"))
        .and_then(|p| p.value.clone())
        .expect("the output records it");
    assert!(note.starts_with("NOT VERIFIED: "), "{note}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(json["unverified"]
        .as_str()
        .unwrap()
        .starts_with("NOT VERIFIED: "));
    assert!(json["verification"].is_null());
}

#[test]
fn rtdetr_with_topk_query_selection_verifies_and_every_mutation_is_caught() {
    // Its output rows come from two TopKs; the tensors they select on are
    // compared too, so a change upstream of a decision cannot hide behind
    // a floor that rounding-flipped decisions inflate.
    check(
        "rtdetr_ts.onnx",
        &[
            Mutation::Weight(1.01),
            Mutation::DropBias,
            Mutation::Swap,
            Mutation::Epsilon(1e-5),
        ],
    );
}

/// Models with `Erf` (GELU) are measured against the input evaluated in
/// f64: tract has no f64 `Erf`, and the reference lowers it to operators
/// it has. A transformer MLP block, RT-DETR (one GELU in its encoder) and
/// FastViT each verify against that reference, and a 1 % change of the
/// MLP's first weight is caught.
#[test]
fn erf_models_are_verified_against_the_f64_reference() {
    let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/f64/gelu_mlp.onnx");
    let reference_of = |a: &Path, b: &Path| -> (Option<i32>, serde_json::Value) {
        let done = npuopt(&["verify", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
        let json = serde_json::from_slice(&done.stdout).unwrap_or_default();
        (done.status.code(), json)
    };
    for model in [mlp.clone(), real("rtdetr_ts.onnx"), real("fastvit_ts.onnx")] {
        let (code, json) = reference_of(&model, &model);
        assert_eq!(code, Some(0), "{}: {json}", model.display());
        assert_eq!(json["reference"], "f64", "{}: {json}", model.display());
    }

    let dir = tempfile::tempdir().unwrap();
    let mut m = read(&mlp);
    let ix = init_ix(&m, "fc1.weight");
    scale(&mut m.graph.as_mut().unwrap().initializer[ix], 1.01);
    let bad = dir.path().join("bad.onnx");
    write(&m, &bad);
    let (code, json) = reference_of(&mlp, &bad);
    assert_eq!(code, Some(3), "{json}");
    assert_eq!(json["reference"], "f64", "{json}");
}

/// A conv's weights times 1.01, through the scale of the
/// `DequantizeLinear` that makes them (the middle conv's).
fn scale_dequantized_conv(m: &mut ModelProto) {
    let g = m.graph.as_ref().unwrap();
    let weights: Vec<&str> = g
        .node
        .iter()
        .filter(|n| op(n) == "Conv")
        .map(|n| n.input[1].as_str())
        .collect();
    let w = weights[weights.len() / 2];
    let dq = g
        .node
        .iter()
        .find(|n| op(n) == "DequantizeLinear" && n.output[0] == w)
        .unwrap_or_else(|| panic!("'{w}' is not dequantized"));
    let ix = init_ix(m, &dq.input[1].clone());
    scale(&mut m.graph.as_mut().unwrap().initializer[ix], 1.01);
}

/// `optimize` (default pipeline, verification on) of a fixture into a
/// temporary folder, which must succeed: the folder, the input, the
/// output and the command's stderr.
fn optimize_fixture(fixture: &str) -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = real(fixture);
    let out = dir.path().join("opt.onnx");
    let done = npuopt(&[
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert_eq!(done.status.code(), Some(0), "{fixture}: {stderr}");
    (dir, input, out, stderr)
}

fn verify_json(a: &Path, b: &Path) -> (Option<i32>, serde_json::Value) {
    let done = npuopt(&["verify", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    let json = serde_json::from_slice(&done.stdout).unwrap_or_default();
    (done.status.code(), json)
}

/// Models that quantize (`QuantizeLinear`) are measured against the input
/// at its own precision, and the report says why: an f64 evaluation
/// differs from the input's run by whole quantization steps, a floor
/// under which a 1 % weight change would pass. The per-channel and
/// per-tensor fixtures verify after the default pipeline, and a 1 %
/// change of one conv's weights (its dequantization scale times 1.01) is
/// caught.
#[test]
fn quantizing_models_are_measured_against_themselves_and_say_why() {
    for fixture in ["qdq_ts.onnx", "qdq_pertensor_ts.onnx"] {
        let (dir, input, out, _) = optimize_fixture(fixture);
        let (code, json) = verify_json(&input, &out);
        assert_eq!(code, Some(0), "{fixture}: {json}");
        assert_eq!(json["reference"], "perturbed", "{fixture}: {json}");
        let why = json["reference_note"].as_str().unwrap();
        assert!(
            why.contains("quantizes (QuantizeLinear '") && !why.contains("tract could not"),
            "{fixture}: {why}"
        );

        let mut m = read(&out);
        scale_dequantized_conv(&mut m);
        let bad = dir.path().join("bad.onnx");
        write(&m, &bad);
        let (code, json) = verify_json(&input, &bad);
        assert_eq!(code, Some(3), "{fixture}: {json}");
    }
}

/// A model whose weights are stored as integers and dequantized, with
/// float activations (the QDQ fixture without its activation
/// `QuantizeLinear` → `DequantizeLinear` pairs), is measured against the
/// input evaluated in f64, `DequantizeLinear` kept in f32: it verifies
/// against itself within noise, and a 1 % weight change is caught.
#[test]
fn dequantized_weights_are_verified_against_the_f64_reference() {
    let mut m = read(&real("qdq_ts.onnx"));
    let g = m.graph.as_mut().unwrap();
    // Each activation pair `x → QuantizeLinear → DequantizeLinear → y`:
    // uses of `y` read `x`.
    let mut bypass = std::collections::HashMap::new();
    for q in g.node.iter().filter(|n| op(n) == "QuantizeLinear") {
        for dq in g.node.iter().filter(|n| op(n) == "DequantizeLinear") {
            if dq.input[0] == q.output[0] {
                bypass.insert(dq.output[0].clone(), q.input[0].clone());
            }
        }
    }
    assert!(!bypass.is_empty(), "no activation pairs");
    g.node.retain(|n| {
        op(n) != "QuantizeLinear"
            && !(op(n) == "DequantizeLinear" && bypass.contains_key(&n.output[0]))
    });
    for n in &mut g.node {
        for i in &mut n.input {
            if let Some(x) = bypass.get(i) {
                *i = x.clone();
            }
        }
    }
    for o in &mut g.output {
        if let Some(x) = o.name.as_ref().and_then(|n| bypass.get(n)) {
            o.name = Some(x.clone());
        }
    }
    assert!(g.node.iter().any(|n| op(n) == "DequantizeLinear"));
    let dir = tempfile::tempdir().unwrap();
    let dq_only = dir.path().join("dq.onnx");
    write(&m, &dq_only);

    let (code, json) = verify_json(&dq_only, &dq_only);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["reference"], "f64", "{json}");
    for o in json["outputs"].as_array().unwrap() {
        let ratio = o["ratio"].as_f64().unwrap();
        assert!(ratio <= json["noise_factor"].as_f64().unwrap(), "{o}");
    }

    scale_dequantized_conv(&mut m);
    let bad = dir.path().join("bad.onnx");
    write(&m, &bad);
    let (code, json) = verify_json(&dq_only, &bad);
    assert_eq!(code, Some(3), "{json}");
    assert_eq!(json["reference"], "f64", "{json}");
}
