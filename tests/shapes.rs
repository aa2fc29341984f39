//! What the cost model cannot see is said, never costed as 0: unsized
//! layers in `inspect`, the reports and the gate; symbolic dims evaluated
//! at 1 and said once; `--input-shape` pinning a whole run.

mod common;

use std::process::{Command, Output};

use npuopt::ir::proto::tensor_shape_proto::dimension::Value as DimValue;
use npuopt::ir::proto::type_proto::Value as TypeValue;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::DType;
use npuopt_fixtures::builder::{ConvSpec, ModelBuilder};
use npuopt_passes::Intent;
use prost::Message;

fn npuopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_npuopt"))
        .args(args)
        .output()
        .expect("npuopt runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, m: &ModelProto) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p.to_str().unwrap().to_string()
}

/// `x` → an op of another domain npuopt cannot see into → a 3×3 conv →
/// a depthwise conv: the convs read a value with no known shape.
fn behind_an_opaque_op() -> ModelProto {
    let mut b = ModelBuilder::new("opaque", 13);
    b.import_domain("com.example", 1);
    let x = b.input("x", &[1, 16, 8, 8]);
    let y = b
        .node(
            "mystery",
            "com.example",
            "Mystery",
            &[Some(&x)],
            vec![],
            vec![(DType::FLOAT, vec![1, 16, 8, 8])],
        )
        .remove(0);
    let c = b.conv(&y, ConvSpec::new(16, 3).pad(1));
    let d = b.conv(&c, ConvSpec::new(16, 3).pad(1).depthwise());
    b.output(&d);
    b.build()
}

/// Replaces dims of the graph inputs by symbols: `(input, axis, name)`.
fn symbolic(mut m: ModelProto, dims: &[(&str, usize, &str)]) -> ModelProto {
    let g = m.graph.as_mut().unwrap();
    for (input, axis, name) in dims {
        let i = g
            .input
            .iter_mut()
            .find(|i| i.name.as_deref() == Some(*input))
            .unwrap();
        let Some(TypeValue::TensorType(t)) = i.r#type.as_mut().unwrap().value.as_mut() else {
            panic!("a tensor input")
        };
        t.shape.as_mut().unwrap().dim[*axis].value = Some(DimValue::DimParam(name.to_string()));
    }
    // The outputs' declared shapes would contradict nothing, but drop them
    // so that what is known comes from inference.
    for o in &mut g.output {
        if let Some(TypeValue::TensorType(t)) = o.r#type.as_mut().unwrap().value.as_mut() {
            t.shape = None;
        }
    }
    m
}

fn small_net() -> ModelProto {
    let mut b = ModelBuilder::new("net", 13);
    let x = b.input("x", &[1, 8, 16, 16]);
    let c = b.conv(&x, ConvSpec::new(16, 3).pad(1).stride(2));
    let d = b.conv(&c, ConvSpec::new(16, 3).pad(1).depthwise());
    let e = b.conv(&d, ConvSpec::new(24, 1));
    b.output(&e);
    b.build()
}

#[test]
fn unsized_layers_are_named_and_counted_in_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "opaque.onnx", &behind_an_opaque_op());
    let v = json(&npuopt(&[
        "inspect",
        &p,
        "--target",
        "ethos-u55-256",
        "--json",
    ]));
    // The opaque op itself (its output has no shape) and both convs.
    assert_eq!(v["unsized_layers"], 3, "{v:#}");
    assert_eq!(v["unsized_mac_layers"], 2);
    let layers = v["layers"].as_array().unwrap();
    let conv = layers.iter().find(|l| l["name"] == "conv0").unwrap();
    assert_eq!(conv["unsized"], "mystery0");
    assert_eq!(conv["bound"], "unsized");
    assert_eq!(conv["cycles"], 0);
    let dw = layers.iter().find(|l| l["name"] == "conv1").unwrap();
    assert_eq!(dw["unsized"], "conv0");
    let text =
        String::from_utf8(npuopt(&["inspect", &p, "--target", "ethos-u55-256"]).stdout).unwrap();
    assert!(
        text.contains("3 layers could not be sized (2 of them conv or matrix products")
            && text.contains("conv0 (Conv): unsized: the shape of 'mystery0' is unknown"),
        "{text}"
    );
}

#[test]
fn unsized_layers_and_symbols_are_in_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let m = symbolic(behind_an_opaque_op(), &[("x", 0, "N")]);
    let p = write(&dir, "opaque.onnx", &m);
    let out = dir.path().join("out.onnx");
    let (json_path, html_path) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let o = npuopt(&[
        "optimize",
        &p,
        "-o",
        out.to_str().unwrap(),
        "--target",
        "ethos-u55-256",
        "--no-verify",
        "--report",
        json_path.to_str().unwrap(),
        "--report-html",
        html_path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning: 3 layers of the input could not be sized and are not costed (first: 'mystery0', the shape of 'mystery0' is unknown)"),
        "{e}"
    );
    assert!(
        e.contains("symbolic dims evaluated at 1 in the estimate: N"),
        "{e}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let before = &r["target"]["estimate"]["before"];
    assert_eq!(before["unsized_layers"], 3);
    assert_eq!(
        before["unsized"][1],
        serde_json::json!({"layer": "conv0", "value": "mystery0"})
    );
    assert_eq!(
        r["target"]["estimate"]["symbols_at_one"],
        serde_json::json!(["N"])
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.contains("id=\"unsized-before\">3 layers before could not be sized (2 of them convs")
            && html.contains("conv0 (no shape for &#39;mystery0&#39;)"),
        "{html}"
    );
    assert!(html.contains("id=\"symbols-at-one\">Symbolic dims evaluated at 1 in the estimates: N"));
}

#[test]
fn a_gated_rewrite_over_an_unsized_layer_is_rejected_with_that_reason() {
    // depthwise-to-group would be proposed at conv1, pad-channels at conv0.
    let run = common::run_with(
        &behind_an_opaque_op(),
        &npuopt_passes::resolve_pass_list_for(
            None,
            None,
            Some(&npuopt_targets::Target::builtin("axera-m55h").unwrap()),
        )
        .unwrap(),
        npuopt_passes::PipelineOptions {
            gate: common::gate(Some("axera-m55h"), Intent::Capacity, &[]),
            ..Default::default()
        },
    );
    let decisions = &run.report.decisions;
    assert!(!decisions.is_empty(), "nothing was proposed");
    for d in decisions {
        assert!(!d.applied, "{d:?}");
        assert!(
            d.reason.contains("cannot be sized") && d.reason.contains("is unknown"),
            "{}",
            d.reason
        );
    }
    run.model.graph.validate().unwrap();
}

#[test]
fn symbolic_dims_are_evaluated_at_one_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let fixed = write(&dir, "fixed.onnx", &small_net());
    let sym = write(&dir, "sym.onnx", &symbolic(small_net(), &[("x", 0, "N")]));
    let a = json(&npuopt(&[
        "inspect",
        &fixed,
        "--target",
        "ethos-u55-256",
        "--json",
    ]));
    let b = json(&npuopt(&[
        "inspect",
        &sym,
        "--target",
        "ethos-u55-256",
        "--json",
    ]));
    assert_eq!(a["symbols_at_one"], serde_json::json!([]));
    assert_eq!(b["symbols_at_one"], serde_json::json!(["N"]));
    assert_eq!(b["unsized_layers"], 0);
    assert_eq!(a["total_cycles"], b["total_cycles"]);
    let text =
        String::from_utf8(npuopt(&["inspect", &sym, "--target", "ethos-u55-256"]).stdout).unwrap();
    assert_eq!(
        text.matches("symbolic dims evaluated at 1").count(),
        1,
        "{text}"
    );
    // The summary says so too.
    let s = String::from_utf8(npuopt(&["inspect", &sym]).stdout).unwrap();
    assert!(s.contains("symbolic dims evaluated at 1: N"), "{s}");
}

#[test]
fn input_shape_pins_the_whole_run_and_the_written_model() {
    let dir = tempfile::tempdir().unwrap();
    let sym = write(
        &dir,
        "sym.onnx",
        &symbolic(small_net(), &[("x", 0, "N"), ("x", 2, "H"), ("x", 3, "W")]),
    );
    let out = dir.path().join("out.onnx");
    let report = dir.path().join("r.json");
    let o = npuopt(&[
        "optimize",
        &sym,
        "-o",
        out.to_str().unwrap(),
        "--target",
        "ethos-u55-256",
        "--input-shape",
        "x=2,8,32,24",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("pinned symbolic dims: H=32, N=2, W=24"), "{e}");
    assert!(!e.contains("evaluated at 1"), "{e}");
    assert!(e.contains("verified with tract"), "{e}");
    // The written model declares the pinned input and a concrete output.
    let m = npuopt::ir::import::load(&out).unwrap();
    let g = &m.graph;
    let x = g.value_by_name("x").unwrap();
    assert_eq!(g.ty(x).unwrap().to_string(), "f32[2,8,32,24]");
    let written = ModelProto::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let dims: Vec<i64> = match written.graph.as_ref().unwrap().input[0]
        .r#type
        .as_ref()
        .unwrap()
        .value
        .as_ref()
    {
        Some(TypeValue::TensorType(t)) => t
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value {
                Some(DimValue::DimValue(v)) => v,
                _ => -1,
            })
            .collect(),
        _ => panic!(),
    };
    assert_eq!(dims, vec![2, 8, 32, 24]);
    for v in g.value_ids() {
        let t = g
            .ty(v)
            .unwrap_or_else(|| panic!("'{}' untyped", g.value(v).name()));
        assert!(t.concrete().is_some(), "'{}' is {t}", g.value(v).name());
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        r["target"]["estimate"]["symbols_at_one"],
        serde_json::json!([])
    );
    assert_eq!(
        r["pinned_symbols"],
        serde_json::json!([
            {"name": "H", "value": 32},
            {"name": "N", "value": 2},
            {"name": "W", "value": 24}
        ])
    );
    // The estimate is that of the model made at that shape.
    let fixed = {
        let mut b = ModelBuilder::new("net", 13);
        let x = b.input("x", &[2, 8, 32, 24]);
        let c = b.conv(&x, ConvSpec::new(16, 3).pad(1).stride(2));
        let d = b.conv(&c, ConvSpec::new(16, 3).pad(1).depthwise());
        let e = b.conv(&d, ConvSpec::new(24, 1));
        b.output(&e);
        write(&dir, "fixed.onnx", &b.build())
    };
    let a = json(&npuopt(&[
        "inspect",
        &fixed,
        "--target",
        "ethos-u55-256",
        "--json",
    ]));
    let b = json(&npuopt(&[
        "inspect",
        &sym,
        "--target",
        "ethos-u55-256",
        "--json",
        "--input-shape",
        "x=2,8,32,24",
    ]));
    assert_eq!(a["total_cycles"], b["total_cycles"]);
    assert_eq!(b["symbols_at_one"], serde_json::json!([]));
}

#[test]
fn a_bad_input_shape_is_bad_input_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let sym = write(&dir, "sym.onnx", &symbolic(small_net(), &[("x", 0, "N")]));
    let out = dir.path().join("out.onnx");
    for (spec, want) in [
        (
            "y=1,8,16,16",
            "no graph input named 'y' (the inputs are: x)",
        ),
        ("x=1,8,16", "input 'x' has rank 4"),
        ("x=1,4,16,16", "input 'x' fixes dim 1 to 8"),
        ("x=1,8,a,16", "dims must be numbers"),
    ] {
        let o = npuopt(&[
            "optimize",
            &sym,
            "-o",
            out.to_str().unwrap(),
            "--input-shape",
            spec,
        ]);
        assert_eq!(o.status.code(), Some(1), "{spec}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{spec}: {}", stderr(&o));
        assert!(!out.exists());
    }
}

/// RepVGG's stride-2 block with `add0` (the sum of its two branches)
/// declared in `value_info` as `declared`.
fn repvgg_declaring(declared: &[i64]) -> ModelProto {
    let mut m = npuopt_fixtures::synthetic::repvgg_block_stride2();
    let info = npuopt::ir::export::value_info_proto(
        "add0",
        &npuopt::ir::TensorType::new(DType::FLOAT, declared),
    );
    m.graph.as_mut().unwrap().value_info.push(info);
    m
}

#[test]
fn a_disputed_shape_is_named_and_no_rewrite_relies_on_it() {
    let passes = ["fold-batchnorm", "merge-branches"];
    // As declared correctly, the branches merge into one conv.
    let ok = common::run(&repvgg_declaring(&[1, 16, 8, 8]), &passes);
    assert!(ok.model.graph.disputes().is_empty());
    assert_eq!(common::count(&ok.model, "Conv"), 1, "{}", ok.snapshot);
    // Declared with 12 channels where the convs make 16: neither is
    // trusted, and the merge, which needs the sum's shape, does not fire.
    let bad = common::run(&repvgg_declaring(&[1, 12, 8, 8]), &passes);
    let d = bad.model.graph.disputes();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].to_string(),
        "value 'add0': the model declares f32[1,12,8,8], inference finds f32[1,16,8,8]"
    );
    let add0 = bad.model.graph.value_by_name("add0").unwrap();
    assert!(bad.model.graph.ty(add0).is_none());
    assert_eq!(common::count(&bad.model, "Conv"), 2, "{}", bad.snapshot);
    common::assert_verified(&bad, "disputed repvgg");
    // The CLI says so, naming the value.
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "bad.onnx", &repvgg_declaring(&[1, 12, 8, 8]));
    let o = npuopt(&["inspect", &p, "--target", "ethos-u55-256"]);
    assert!(
        stderr(&o).contains("warning: value 'add0': the model declares f32[1,12,8,8], inference finds f32[1,16,8,8]; no rewrite relies on its shape"),
        "{}",
        stderr(&o)
    );
    let v = json(&npuopt(&[
        "inspect",
        &p,
        "--target",
        "ethos-u55-256",
        "--json",
    ]));
    assert_eq!(v["disputes"].as_array().unwrap().len(), 1);
    let s = String::from_utf8(npuopt(&["inspect", &p]).stdout).unwrap();
    assert!(s.contains("warning:     value 'add0'"), "{s}");
}
