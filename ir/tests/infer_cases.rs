//! Inference against ONNX's own, op by op.
//!
//! `fixtures/infer/` holds small models (every op of the inference tables,
//! each attribute and input form, symbolic dims, opsets 11, 13, 17 and 18,
//! and 7 and 9 for Upsample)
//! and `expected.json`: for every node output, what
//! `onnx.shape_inference.infer_shapes(strict_mode=True, data_prop=True)`
//! inferred, and the shape onnxruntime produced with the case's symbols
//! bound (both made by `fixtures/scripts/make_infer_cases.py`, run by hand).
//!
//! The rule, per value:
//! * the dtype is ONNX's;
//! * where ONNX knows the rank, ours is the same;
//! * where ONNX knows a dim (a number, or a symbol of the model's inputs),
//!   ours is that dim;
//! * where ONNX does not know a dim (or the rank), ours may say more — a
//!   number or a symbolic expression — but only what onnxruntime confirms:
//!   evaluated with the case's bindings, it must equal the shape the run
//!   produced. A fresh symbol for a data-dependent dim (`NonZero_3_count`)
//!   is not bound and so not compared.
//!
//! ONNX's inference is weaker than npuopt's in places (symbolic spatial
//! dims through convs and pools, data propagation through Where/Equal and
//! float arithmetic): those dims are counted and printed, and each is
//! checked against onnxruntime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use npuopt_ir::{Dim, TensorType};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/infer")
}

/// What ONNX said about one dim.
enum OnnxDim {
    Value(i64),
    Param(String),
    Unknown,
}

fn onnx_dims(v: &Value) -> Option<Vec<OnnxDim>> {
    let s = v.get("shape")?.as_array()?;
    Some(
        s.iter()
            .map(|d| match d {
                Value::Number(n) => OnnxDim::Value(n.as_i64().expect("an integer dim")),
                Value::String(p) => OnnxDim::Param(p.clone()),
                _ => OnnxDim::Unknown,
            })
            .collect(),
    )
}

#[derive(Default)]
struct Tally {
    values: usize,
    dims_agreeing: usize,
    dims_more_precise: usize,
    ranks_more_precise: usize,
    unconfirmed: usize,
    failures: Vec<String>,
}

#[test]
fn inference_agrees_with_onnx_and_onnxruntime() {
    let text = std::fs::read_to_string(dir().join("expected.json"))
        .expect("fixtures/infer/expected.json (make_infer_cases.py)");
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let mut t = Tally::default();
    let mut opsets = std::collections::BTreeSet::new();
    let mut ops = std::collections::BTreeSet::new();
    for case in cases {
        let file = case["file"].as_str().unwrap();
        opsets.insert(case["opset"].as_i64().unwrap());
        let model =
            npuopt_ir::import::load(&dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let g = &model.graph;
        let bind: HashMap<String, i64> = case["bind"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
            .collect();
        let inputs_params: Vec<String> = bind.keys().cloned().collect();
        for (name, v) in case["values"].as_object().unwrap() {
            t.values += 1;
            ops.insert(v["op"].as_str().unwrap().to_string());
            let at = format!("{file}: '{name}' ({})", v["op"].as_str().unwrap());
            let id = g
                .value_by_name(name)
                .unwrap_or_else(|| panic!("{at}: no such value"));
            let ours = g.value(id).ty.clone();
            let actual: Option<Vec<i64>> = v["actual"]
                .as_array()
                .map(|a| a.iter().map(|d| d.as_i64().unwrap()).collect());
            check_value(
                &at,
                ours.as_ref(),
                &v["onnx"],
                actual.as_deref(),
                &bind,
                &inputs_params,
                &mut t,
            );
        }
    }
    eprintln!(
        "{} values in {} models (opsets {:?}, {} op types): {} dims as ONNX infers them; \
         {} dims and {} ranks more precise than ONNX, each confirmed by onnxruntime; \
         {} dims of data-dependent symbols not comparable",
        t.values,
        cases.len(),
        opsets,
        ops.len(),
        t.dims_agreeing,
        t.dims_more_precise,
        t.ranks_more_precise,
        t.unconfirmed
    );
    for o in [11, 13, 17, 18] {
        assert!(opsets.contains(&o), "opset {o} is not covered");
    }
    assert!(
        t.failures.is_empty(),
        "{} disagreements:\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
}

fn check_value(
    at: &str,
    ours: Option<&TensorType>,
    onnx: &Value,
    actual: Option<&[i64]>,
    bind: &HashMap<String, i64>,
    input_params: &[String],
    t: &mut Tally,
) {
    let Some(ours) = ours else {
        t.failures
            .push(format!("{at}: no type inferred (ONNX: {onnx})"));
        return;
    };
    if onnx.is_null() {
        t.failures
            .push(format!("{at}: ONNX inferred nothing; the case is broken"));
        return;
    }
    let want_dtype = onnx["dtype"].as_i64().unwrap() as i32;
    if want_dtype != 0 && ours.dtype.0 != want_dtype {
        t.failures.push(format!(
            "{at}: dtype {} where ONNX says {want_dtype}",
            ours.dtype
        ));
    }
    let onnx_shape = onnx_dims(onnx);
    let Some(our_shape) = &ours.shape else {
        if onnx_shape.is_some() {
            t.failures
                .push(format!("{at}: rank unknown where ONNX knows {onnx}"));
        }
        return;
    };
    if let Some(a) = actual {
        if a.len() != our_shape.len() {
            t.failures
                .push(format!("{at}: {ours} but onnxruntime made {a:?}"));
            return;
        }
    }
    match &onnx_shape {
        Some(o) if o.len() != our_shape.len() => {
            t.failures
                .push(format!("{at}: {ours} where ONNX says {onnx}"));
            return;
        }
        None => t.ranks_more_precise += 1,
        _ => {}
    }
    let bound = |s: &str| bind.get(s).copied();
    for (i, d) in our_shape.iter().enumerate() {
        let theirs = onnx_shape.as_ref().map(|o| &o[i]);
        let agrees = match (theirs, d) {
            (Some(OnnxDim::Value(k)), Dim::Known(v)) => k == v,
            (Some(OnnxDim::Param(p)), Dim::Sym(s)) if input_params.contains(p) => {
                s.as_name() == Some(p.as_str())
            }
            (Some(OnnxDim::Value(_)), _) => false,
            (Some(OnnxDim::Param(p)), _) if input_params.contains(p) => {
                // A model input's symbol: we must keep it (or know better).
                matches!(d, Dim::Known(_))
            }
            _ => true,
        };
        if !agrees {
            t.failures.push(format!(
                "{at}: dim {i} is {d} in {ours} where ONNX says {onnx}"
            ));
            continue;
        }
        let onnx_knew = match theirs {
            Some(OnnxDim::Value(_)) => true,
            Some(OnnxDim::Param(p)) => input_params.contains(p) && d.is_symbolic(),
            _ => false,
        };
        if onnx_knew {
            t.dims_agreeing += 1;
        }
        // Whatever we say, onnxruntime must confirm it.
        let Some(a) = actual else { continue };
        match d {
            Dim::Unknown => {}
            _ => match d.eval(&bound) {
                Some(v) if v == a[i] => {
                    if !onnx_knew {
                        t.dims_more_precise += 1;
                    }
                }
                Some(v) => t.failures.push(format!(
                    "{at}: dim {i} is {d} = {v} but onnxruntime made {} ({ours} vs {a:?})",
                    a[i]
                )),
                None => t.unconfirmed += 1,
            },
        }
    }
}
