//! Integration tests of `npuopt::verify`: small ONNX models built here with
//! the prost types, verified against each other with tract.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use npuopt::ir::export::{write_proto, ExternalData, WriteOptions};
use npuopt::ir::proto::attribute_proto::AttributeType;
use npuopt::ir::proto::tensor_proto::DataType;
use npuopt::ir::proto::tensor_shape_proto::{dimension, Dimension};
use npuopt::ir::proto::type_proto::{Tensor as TypeTensor, Value as TypeValue};
use npuopt::ir::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use npuopt::verify::{verify_bytes, verify_files, VerifyError, VerifyOptions, VerifyReport};

// ---------------------------------------------------------------------------
// A tiny model builder.

/// A declared dim: a value or a `dim_param`.
#[derive(Clone, Copy)]
enum D {
    V(i64),
    P(&'static str),
}
use D::{P, V};

fn vi(name: &str, elem: DataType, dims: &[D]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TypeTensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                V(v) => dimension::Value::DimValue(*v),
                                P(p) => dimension::Value::DimParam(p.to_string()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(
            data.iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        ),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, dims: &[i64], data: Vec<i64>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(format!("{}_{}", op.to_lowercase(), outputs[0])),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![
            OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(13),
            },
            OperatorSetIdProto {
                domain: Some("com.example".into()),
                version: Some(1),
            },
        ],
        producer_name: Some("npuopt-tests".into()),
        graph: Some(graph),
        ..Default::default()
    }
}

/// Writes `m` to `path` (tensors of at least `external_min` bytes to a side
/// file when given).
fn write(m: &ModelProto, path: &Path, external_min: Option<u64>) {
    let opts = WriteOptions {
        external: external_min.map(|min_bytes| ExternalData {
            location: "weights.bin".into(),
            min_bytes,
        }),
        ..Default::default()
    };
    write_proto(m.clone(), path, &opts).expect("write model");
}

fn encode(m: &ModelProto) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    write(m, &path, None);
    std::fs::read(&path).unwrap()
}

/// Deterministic conv weights, [3, 2, 3, 3].
fn conv_weights() -> Vec<f32> {
    (0..54)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect()
}

/// `y = Relu(Conv(x, W, B))`, 3×3 kernel, pads 1, on `x: [x_dims]` (2
/// channels). `tweak` scales one weight by 1.01; `extra_output` also
/// exposes the conv result; `relu_op` replaces Relu by another op.
struct ConvRelu {
    x_dims: Vec<D>,
    tweak: bool,
    extra_output: bool,
    relu_op: (&'static str, &'static str),
    value_info: bool,
}

impl Default for ConvRelu {
    fn default() -> Self {
        ConvRelu {
            x_dims: vec![V(1), V(2), V(5), V(5)],
            tweak: false,
            extra_output: false,
            relu_op: ("", "Relu"),
            value_info: false,
        }
    }
}

impl ConvRelu {
    fn build(&self) -> ModelProto {
        let mut w = conv_weights();
        if self.tweak {
            // w[3] is 0.5: 1 % of it is 0.005.
            w[3] *= 1.01;
        }
        let mut relu = node(self.relu_op.1, &["c"], &["y"], vec![]);
        relu.domain = Some(self.relu_op.0.into());
        let batch = self.x_dims[0];
        let out_dims = [batch, V(3), self.x_dims[2], self.x_dims[3]];
        let mut outputs = vec![vi("y", DataType::Float, &out_dims)];
        if self.extra_output {
            outputs.push(vi("c", DataType::Float, &out_dims));
        }
        model(GraphProto {
            name: Some("conv_relu".into()),
            node: vec![
                node(
                    "Conv",
                    &["x", "W", "B"],
                    &["c"],
                    vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
                ),
                relu,
            ],
            initializer: vec![
                f32_tensor("W", &[3, 2, 3, 3], w),
                f32_tensor("B", &[3], vec![0.1, -0.2, 0.05]),
            ],
            input: vec![vi("x", DataType::Float, &self.x_dims)],
            output: outputs,
            value_info: if self.value_info {
                vec![vi("c", DataType::Float, &out_dims)]
            } else {
                vec![]
            },
            ..Default::default()
        })
    }

    fn bytes(&self) -> Vec<u8> {
        encode(&self.build())
    }
}

fn verify(a: &[u8], b: &[u8]) -> Result<VerifyReport, VerifyError> {
    verify_bytes(a, b, &VerifyOptions::default())
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn identical_models_pass_with_zero_error() {
    let m = ConvRelu::default().bytes();
    let report = verify(&m, &m).unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.samples, 1);
    assert_eq!(report.seed, 0);
    assert_eq!(report.outputs.len(), 1);
    let y = &report.outputs[0];
    assert_eq!(y.name, "y");
    assert_eq!(y.shape, vec![1, 3, 5, 5]);
    assert_eq!(y.max_abs_err, 0.0);
    assert_eq!(y.max_rel_err, 0.0);
    assert!(y.max_abs_ref > 0.1, "{y:?}");
    assert!((y.cosine - 1.0).abs() < 1e-12, "{y:?}");
    assert!(y.passed);
}

#[test]
fn a_weight_changed_by_one_percent_fails() {
    let reference = ConvRelu::default().bytes();
    let candidate = ConvRelu {
        tweak: true,
        ..Default::default()
    }
    .bytes();
    let opts = VerifyOptions {
        samples: 3,
        ..Default::default()
    };
    let report = verify_bytes(&reference, &candidate, &opts).unwrap();
    assert!(!report.passed, "{report:#?}");
    assert_eq!(report.samples, 3);
    let y = &report.outputs[0];
    assert!(!y.passed);
    assert!(y.max_abs_err > 1e-4, "{y:?}");
    assert!(y.max_abs_err.is_finite());
    assert!(y.max_rel_err > 1e-4 && y.max_rel_err < 1e-1, "{y:?}");
    assert!(y.cosine > 0.99 && y.cosine < 1.0, "{y:?}");

    // A loose enough tolerance accepts the same difference.
    let loose = VerifyOptions {
        rtol: Some(0.05),
        ..opts
    };
    assert!(verify_bytes(&reference, &candidate, &loose).unwrap().passed);
}

#[test]
fn reports_are_deterministic_and_depend_on_the_seed() {
    let reference = ConvRelu::default().bytes();
    let candidate = ConvRelu {
        tweak: true,
        ..Default::default()
    }
    .bytes();
    let opts = VerifyOptions {
        seed: 42,
        ..Default::default()
    };
    let a = verify_bytes(&reference, &candidate, &opts).unwrap();
    let b = verify_bytes(&reference, &candidate, &opts).unwrap();
    assert_eq!(a, b);
    let c = verify_bytes(&reference, &candidate, &VerifyOptions::default()).unwrap();
    assert_ne!(a.outputs[0].max_abs_err, c.outputs[0].max_abs_err);
}

#[test]
fn a_different_output_count_is_an_error() {
    let reference = ConvRelu::default().bytes();
    let candidate = ConvRelu {
        extra_output: true,
        ..Default::default()
    }
    .bytes();
    match verify(&reference, &candidate) {
        Err(VerifyError::OutputMismatch(msg)) => {
            assert!(msg.contains("1 output") && msg.contains("2"), "{msg}");
        }
        other => panic!("expected OutputMismatch, got {other:?}"),
    }
}

#[test]
fn a_different_output_shape_is_an_error() {
    // Same names, but the candidate pools the conv output to 1×1.
    let reference = ConvRelu::default().build();
    let mut candidate = reference.clone();
    let g = candidate.graph.as_mut().unwrap();
    g.node[1].output = vec!["r".into()];
    g.node
        .push(node("GlobalAveragePool", &["r"], &["y"], vec![]));
    match verify(&encode(&reference), &encode(&candidate)) {
        Err(VerifyError::OutputMismatch(msg)) => {
            assert!(msg.contains("'y'") && msg.contains("shape"), "{msg}");
        }
        other => panic!("expected OutputMismatch, got {other:?}"),
    }
}

#[test]
fn an_unsupported_op_is_a_load_error_naming_it() {
    let reference = ConvRelu::default().bytes();
    let candidate = ConvRelu {
        relu_op: ("com.example", "Nope"),
        ..Default::default()
    }
    .bytes();
    let err = verify(&reference, &candidate).unwrap_err();
    match &err {
        VerifyError::Load { model, message } | VerifyError::Run { model, message } => {
            assert!(model.contains("candidate"), "{err}");
            assert!(message.contains("Nope"), "{err}");
            assert!(message.contains("nope_y"), "{err}");
            assert!(message.contains("does not implement"), "{err}");
            assert!(!message.contains('\n'), "{err}");
        }
        other => panic!("expected Load or Run, got {other:?}"),
    }
    eprintln!("{err}");
}

#[test]
fn an_unreadable_model_is_a_load_error() {
    let m = ConvRelu::default().bytes();
    let err = verify(&m, b"not a model").unwrap_err();
    assert!(
        matches!(&err, VerifyError::Load { model, .. } if model.contains("candidate")),
        "{err:?}"
    );
    let missing = Path::new("/nonexistent/model.onnx");
    let err = verify_files(missing, missing, &VerifyOptions::default()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Load { model, .. } if model.contains("/nonexistent/model.onnx")),
        "{err:?}"
    );
}

#[test]
fn a_symbolic_batch_dim_defaults_to_one_with_a_note() {
    let m = ConvRelu {
        x_dims: vec![P("N"), V(2), V(5), V(5)],
        value_info: true,
        ..Default::default()
    }
    .bytes();
    let report = verify(&m, &m).unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.outputs[0].shape, vec![1, 3, 5, 5]);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("batch") && n.contains("'N'") && n.contains("'x'")),
        "{:?}",
        report.notes
    );

    // The value_info hint (c: [N, 3, 5, 5]) was used, not rejected.
    assert!(
        !report.notes.iter().any(|n| n.contains("value_info")),
        "{:?}",
        report.notes
    );

    // An override wins over the default.
    let opts = VerifyOptions {
        input_shapes: vec![("x".into(), vec![2, 2, 5, 5])],
        ..Default::default()
    };
    let report = verify_bytes(&m, &m, &opts).unwrap();
    assert!(report.passed);
    assert_eq!(report.outputs[0].shape, vec![2, 3, 5, 5]);
    assert!(
        !report.notes.iter().any(|n| n.contains("batch")),
        "{:?}",
        report.notes
    );
}

#[test]
fn an_unresolved_symbolic_dim_is_a_helpful_error_and_input_shapes_fix_it() {
    let m = ConvRelu {
        x_dims: vec![V(1), V(2), P("H"), P("W")],
        ..Default::default()
    }
    .bytes();
    match verify(&m, &m) {
        Err(VerifyError::Inputs(msg)) => {
            assert!(msg.contains("'x'"), "{msg}");
            assert!(msg.contains("'H'") && msg.contains("'W'"), "{msg}");
            assert!(msg.contains("--input-shape x=1,2,H,W"), "{msg}");
        }
        other => panic!("expected Inputs, got {other:?}"),
    }

    let opts = VerifyOptions {
        input_shapes: vec![("x".into(), vec![1, 2, 6, 7])],
        ..Default::default()
    };
    let report = verify_bytes(&m, &m, &opts).unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.outputs[0].shape, vec![1, 3, 6, 7]);

    // Overrides must name an input and match its rank.
    let bad_name = VerifyOptions {
        input_shapes: vec![("nope".into(), vec![1, 2, 6, 7])],
        ..Default::default()
    };
    assert!(matches!(
        verify_bytes(&m, &m, &bad_name),
        Err(VerifyError::Inputs(msg)) if msg.contains("'nope'") && msg.contains("x")
    ));
    let bad_rank = VerifyOptions {
        input_shapes: vec![("x".into(), vec![1, 2, 6])],
        ..Default::default()
    };
    assert!(matches!(
        verify_bytes(&m, &m, &bad_rank),
        Err(VerifyError::Inputs(msg)) if msg.contains("rank")
    ));
}

/// `y = x + k` on int64 `x: [4]`.
fn add_int(k: i64) -> Vec<u8> {
    encode(&model(GraphProto {
        name: Some("add_int".into()),
        node: vec![node("Add", &["x", "k"], &["y"], vec![])],
        initializer: vec![i64_tensor("k", &[1], vec![k])],
        input: vec![vi("x", DataType::Int64, &[V(4)])],
        output: vec![vi("y", DataType::Int64, &[V(4)])],
        ..Default::default()
    }))
}

#[test]
fn integer_outputs_are_compared_exactly_and_input_range_is_used() {
    let a = add_int(0);
    let report = verify(&a, &a).unwrap();
    assert!(report.passed);
    // Default range [0, 10).
    assert!(report.outputs[0].max_abs_ref <= 9.0);

    let b = add_int(1);
    let report = verify(&a, &b).unwrap();
    assert!(!report.passed);
    assert_eq!(report.outputs[0].max_abs_err, 1.0);
    // Exact comparison: even a tolerance that would accept the difference
    // for floats does not.
    let loose = VerifyOptions {
        atol: Some(10.0),
        ..Default::default()
    };
    assert!(!verify_bytes(&a, &b, &loose).unwrap().passed);

    // Every draw from [5, 6) is 5.
    let five = VerifyOptions {
        input_range: Some((5.0, 6.0)),
        ..Default::default()
    };
    let report = verify_bytes(&a, &a, &five).unwrap();
    assert_eq!(report.outputs[0].max_abs_ref, 5.0);
}

/// `y = Sqrt(Abs(x))`, or (candidate) `y = Sqrt(x)`: NaN where x < 0.
fn sqrt_model(nan: bool) -> Vec<u8> {
    let nodes = if nan {
        vec![node("Sqrt", &["x"], &["y"], vec![])]
    } else {
        vec![
            node("Abs", &["x"], &["a"], vec![]),
            node("Sqrt", &["a"], &["y"], vec![]),
        ]
    };
    encode(&model(GraphProto {
        name: Some("sqrt".into()),
        node: nodes,
        input: vec![vi("x", DataType::Float, &[V(2), V(8)])],
        output: vec![vi("y", DataType::Float, &[V(2), V(8)])],
        ..Default::default()
    }))
}

#[test]
fn nan_in_the_candidate_fails() {
    let reference = sqrt_model(false);
    let candidate = sqrt_model(true);
    let loose = VerifyOptions {
        rtol: Some(1.0),
        atol: Some(1.0),
        ..Default::default()
    };
    let report = verify_bytes(&reference, &candidate, &loose).unwrap();
    assert!(!report.passed, "{report:#?}");
    assert_eq!(report.outputs[0].max_abs_err, f64::INFINITY);
    assert!(
        report.notes.iter().any(|n| n.contains("NaN")),
        "{:?}",
        report.notes
    );
    // The other way round too: the reference's NaN is not matched.
    let report = verify_bytes(&candidate, &reference, &loose).unwrap();
    assert!(!report.passed, "{report:#?}");
}

#[test]
fn models_with_external_data_are_verified_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let inline = dir.path().join("inline.onnx");
    let sub = dir.path().join("ext");
    std::fs::create_dir(&sub).unwrap();
    let external = sub.join("external.onnx");
    let m = ConvRelu::default().build();
    write(&m, &inline, None);
    write(&m, &external, Some(0));
    assert!(sub.join("weights.bin").exists());
    assert!(
        std::fs::metadata(&external).unwrap().len() < std::fs::metadata(&inline).unwrap().len()
    );

    let report = verify_files(&inline, &external, &VerifyOptions::default()).unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.outputs[0].max_abs_err, 0.0);
}

#[test]
fn options_are_checked() {
    let m = ConvRelu::default().bytes();
    for opts in [
        VerifyOptions {
            samples: 0,
            ..Default::default()
        },
        VerifyOptions {
            rtol: Some(-1.0),
            ..Default::default()
        },
        VerifyOptions {
            input_range: Some((3.0, 1.0)),
            ..Default::default()
        },
    ] {
        assert!(
            matches!(verify_bytes(&m, &m, &opts), Err(VerifyError::Options(_))),
            "{opts:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Real PyTorch exports (committed: a missing one fails the test).

#[test]
fn real_resnet_verifies_against_itself() {
    let p = common::real_path("resnet_ts.onnx");
    let t = Instant::now();
    let report = verify_files(&p, &p, &VerifyOptions::default()).unwrap();
    eprintln!("resnet_ts vs itself: {:?} {report:?}", t.elapsed());
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.outputs[0].max_abs_err, 0.0);
    assert!(report.outputs[0].max_abs_ref > 0.0);
}

#[test]
fn real_deploy_form_verifies_against_train_form() {
    // The reparameterized (deploy) RepVGG computes the same function as the
    // multi-branch training form, up to float rounding.
    let (train, deploy) = (
        common::real_path("repvgg_ts.onnx"),
        common::real_path("repvgg_deploy_ts.onnx"),
    );
    let report = verify_files(&train, &deploy, &VerifyOptions::default()).unwrap();
    eprintln!("repvgg train vs deploy: {report:?}");
    assert!(report.passed, "{report:#?}");
    assert!(report.outputs[0].max_abs_err > 0.0);
    assert!(report.outputs[0].cosine > 0.999_999);
}

/// Verifies every fixtures/real/*.onnx against itself and prints timings
/// (`cargo test --test verify -- --ignored --nocapture`).
#[test]
#[ignore]
fn all_real_fixtures_verify_against_themselves() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    paths.sort();
    let mut failures = vec![];
    for p in &paths {
        let t = Instant::now();
        let result = verify_files(p, p, &VerifyOptions::default());
        let name = p.file_name().unwrap().to_string_lossy();
        match result {
            Ok(r) if r.passed => eprintln!("{name}: ok in {:?} {:?}", t.elapsed(), r.notes),
            other => {
                eprintln!("{name}: FAILED in {:?}: {other:?}", t.elapsed());
                failures.push(name.to_string());
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// `s = ((C + D) + E) + 0·x` (or `C + (D + E)` reassociated), then
/// `TopK(s, k=1)`. With C = [1, 1], D = E = [0, 2⁻²⁴] the first grouping
/// rounds both scores to 1 (a tie: TopK picks index 0) and the second
/// gives the second score 1 + 2⁻²³ (index 1 wins): the exact value, one
/// rounding step from the tie. `second` replaces the candidate's second
/// score with 1.5 — not a tie.
fn topk_tie(reassociate: bool, second: Option<f32>) -> Vec<u8> {
    let tiny = 2f32.powi(-24);
    let mut c = vec![1.0, 1.0];
    let mut d = vec![0.0, tiny];
    let mut e = vec![0.0, tiny];
    if let Some(v) = second {
        (c[1], d[1], e[1]) = (v, 0.0, 0.0);
    }
    let sum = if reassociate {
        vec![
            node("Add", &["D", "E"], &["de"], vec![]),
            node("Add", &["C", "de"], &["cde"], vec![]),
        ]
    } else {
        vec![
            node("Add", &["C", "D"], &["cd"], vec![]),
            node("Add", &["cd", "E"], &["cde"], vec![]),
        ]
    };
    let mut nodes = sum;
    nodes.extend([
        node("Mul", &["x", "Z"], &["zx"], vec![]),
        node("Add", &["cde", "zx"], &["s"], vec![]),
        node("TopK", &["s", "K"], &["values", "indices"], vec![]),
    ]);
    encode(&model(GraphProto {
        name: Some("topk_tie".into()),
        node: nodes,
        initializer: vec![
            f32_tensor("C", &[1, 2], c),
            f32_tensor("D", &[1, 2], d),
            f32_tensor("E", &[1, 2], e),
            f32_tensor("Z", &[1, 2], vec![0.0, 0.0]),
            i64_tensor("K", &[1], vec![1]),
        ],
        input: vec![vi("x", DataType::Float, &[V(1), V(2)])],
        output: vec![
            vi("values", DataType::Float, &[V(1), V(1)]),
            vi("indices", DataType::Int64, &[V(1), V(1)]),
        ],
        ..Default::default()
    }))
}

#[test]
fn a_topk_tie_broken_by_rounding_passes_as_a_tie_and_a_real_change_does_not() {
    let reference = topk_tie(false, None);
    let report = verify(&reference, &topk_tie(true, None)).unwrap();
    assert!(report.passed, "{report:#?}");
    let indices = &report.outputs[1];
    assert_eq!(indices.name, "indices");
    // Element by element the indices differ (0 vs 1) ...
    assert_eq!(indices.max_abs_err, 1.0, "{indices:?}");
    // ... but the scores they are chosen from agree within noise.
    assert_eq!(indices.verdict, "within noise up to ties", "{indices:?}");
    assert_eq!(indices.compared_as, "rows up to ties");
    let feed = report.intermediates.iter().find(|i| i.name == "s").unwrap();
    assert!(feed.passed, "{feed:?}");

    let report = verify(&reference, &topk_tie(true, Some(1.5))).unwrap();
    assert!(!report.passed, "{report:#?}");
    assert_eq!(report.outputs[1].verdict, "mismatch");
}

/// `y = Gather(data, idx)` with `data` a [5, 3] initializer, and
/// `q = Div(a, d)` on int64 inputs; `computed_divisor` divides by
/// `b − c` instead, which npuopt cannot see is a divisor.
fn int_ops(computed_divisor: bool) -> ModelProto {
    let data: Vec<f32> = (0..15).map(|i| i as f32).collect();
    let mut nodes = vec![node("Gather", &["data", "idx"], &["y"], vec![])];
    let mut inputs = vec![
        vi("idx", DataType::Int64, &[V(4)]),
        vi("a", DataType::Int64, &[V(64)]),
    ];
    if computed_divisor {
        nodes.push(node("Sub", &["b", "c"], &["d"], vec![]));
        inputs.push(vi("b", DataType::Int64, &[V(64)]));
        inputs.push(vi("c", DataType::Int64, &[V(64)]));
    } else {
        inputs.push(vi("d", DataType::Int64, &[V(64)]));
    }
    nodes.push(node("Div", &["a", "d"], &["q"], vec![]));
    model(GraphProto {
        name: Some("int_ops".into()),
        node: nodes,
        initializer: vec![f32_tensor("data", &[5, 3], data)],
        input: inputs,
        output: vec![
            vi("y", DataType::Float, &[V(4), V(3)]),
            vi("q", DataType::Int64, &[V(64)]),
        ],
        ..Default::default()
    })
}

#[test]
fn integer_indices_and_divisors_are_drawn_valid() {
    let m = encode(&int_ops(false));
    let report = verify(&m, &m).unwrap();
    assert!(report.passed, "{report:#?}");
    let note = report
        .notes
        .iter()
        .find(|n| n.starts_with("integer inputs drawn valid"))
        .expect("a note says so");
    assert!(
        note.contains("'idx' in [0, 5)") && note.contains("'d' non-zero"),
        "{note}"
    );
}

#[test]
fn a_tract_panic_is_npuopts_own_message_once_with_no_panic_text() {
    // Integer division by a computed zero: tract panics.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    write(&int_ops(true), &path, None);
    let p = path.to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_npuopt"))
        .args(["verify", p, p])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    assert_eq!(stderr.matches("tract panicked").count(), 1, "{stderr}");
}
