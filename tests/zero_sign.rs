//! `x + 0` and the sign of zero: at `x = −0`, `x + (+0)` is `+0`, so
//! `Reciprocal(Add(x, 0))` is `+inf` where `Reciprocal(x)` is `−inf`. The
//! Add stays where the sign can reach an op that tells ±0 apart, goes
//! where it cannot, and `x + (−0)` / `x − (+0)` (bit-exact) always go.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::DType;
use npuopt_fixtures::ModelBuilder;
use tract_onnx::prelude::*;

const PASSES: &[&str] = &["eliminate-identity", "eliminate-dead"];

/// `after(Add|Sub(x, zero))` with `zero` a constant `[4]` of `sign · 0`.
fn model(op: &str, zero: f32, after: &str) -> ModelProto {
    let mut m = ModelBuilder::new("zero_sign", 13);
    let x = m.input("x", &[1, 4]);
    let z = m.weight("zero", &[4], &[zero; 4]);
    let s = if op == "Add" {
        m.add(&x, &z)
    } else {
        m.sub(&x, &z)
    };
    let y = m
        .node(
            "after",
            "",
            after,
            &[Some(&s)],
            vec![],
            vec![(DType::FLOAT, vec![1, 4])],
        )
        .remove(0);
    m.output(&y);
    m.build()
}

/// The model's output at `x = [−0, −0, 1, −1]`, by tract.
fn at_negative_zero(bytes: &[u8]) -> Vec<f32> {
    let m = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = tract_ndarray::arr2(&[[-0.0f32, -0.0, 1.0, -1.0]]).into_tensor();
    let out = m.run(tvec!(x.into())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn removed(r: &Run) -> bool {
    r.report.changes.iter().any(|c| c.rule == "neutral-operand")
}

#[test]
fn reciprocal_of_x_plus_zero_keeps_the_add() {
    let m = model("Add", 0.0, "Reciprocal");
    let r = run(&m, PASSES);
    assert!(!removed(&r), "{}", r.snapshot);
    assert_eq!(count(&r.model, "Add"), 1);
    let why: Vec<_> = r.report.skips.iter().map(|s| s.reason.clone()).collect();
    assert!(
        why.iter()
            .any(|w| w.contains("−0 into +0") && w.contains("Reciprocal")),
        "{why:?}"
    );
    // What the rewrite would have broken: +inf before, −inf without the Add.
    let before = at_negative_zero(&r.before);
    assert_eq!(before[0], f32::INFINITY);
    let mut without = ModelBuilder::new("zero_sign", 13);
    let x = without.input("x", &[1, 4]);
    let y = without
        .node(
            "after",
            "",
            "Reciprocal",
            &[Some(&x)],
            vec![],
            vec![(DType::FLOAT, vec![1, 4])],
        )
        .remove(0);
    without.output(&y);
    let bare = at_negative_zero(&prost::Message::encode_to_vec(&without.build()));
    assert_eq!(bare[0], f32::NEG_INFINITY);
    // The kept model computes what the input did, bit for bit.
    let after = at_negative_zero(&r.model.to_bytes().unwrap());
    assert_eq!(
        before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        after.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn the_sign_cannot_matter_before_relu_or_sigmoid() {
    for after in ["Relu", "Sigmoid"] {
        let r = run(&model("Add", 0.0, after), PASSES);
        assert!(removed(&r), "{after}: {:?}", r.report.skips);
        let (b, a) = (
            at_negative_zero(&r.before),
            at_negative_zero(&r.model.to_bytes().unwrap()),
        );
        // Equal as numbers (a zero's sign may differ).
        assert_eq!(b, a, "{after}");
    }
}

#[test]
fn bit_exact_forms_always_go() {
    // x + (−0) and x − (+0) are x, even at −0, even before a Reciprocal.
    for (op, zero) in [("Add", -0.0f32), ("Sub", 0.0)] {
        let r = run(&model(op, zero, "Reciprocal"), PASSES);
        assert!(removed(&r), "{op} {zero}: {:?}", r.report.skips);
        let (b, a) = (
            at_negative_zero(&r.before),
            at_negative_zero(&r.model.to_bytes().unwrap()),
        );
        assert_eq!(
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{op}"
        );
    }
    // x − (−0) flips like x + 0.
    let r = run(&model("Sub", -0.0, "Reciprocal"), PASSES);
    assert!(!removed(&r));
}

#[test]
fn a_sum_with_a_constant_without_zeros_ends_the_sign_of_zero() {
    // Reciprocal((x + 0) + b): with every b ≠ 0, ±0 + b = b, so the
    // Add of 0 goes; with a zero in b, the sign reaches the Reciprocal.
    for (b, goes) in [
        ([0.5f32, -1.0, 2.0, 3.0], true),
        ([0.5, 0.0, 2.0, 3.0], false),
    ] {
        let mut m = ModelBuilder::new("zero_sign_bias", 13);
        let x = m.input("x", &[1, 4]);
        let z = m.weight("zero", &[4], &[0.0; 4]);
        let s = m.add(&x, &z);
        let bias = m.weight("b", &[4], &b);
        let t = m.add(&s, &bias);
        let y = m
            .node(
                "after",
                "",
                "Reciprocal",
                &[Some(&t)],
                vec![],
                vec![(DType::FLOAT, vec![1, 4])],
            )
            .remove(0);
        m.output(&y);
        let r = run(&m.build(), PASSES);
        assert_eq!(removed(&r), goes, "{b:?}: {:?}", r.report.skips);
        let (before, after) = (
            at_negative_zero(&r.before),
            at_negative_zero(&r.model.to_bytes().unwrap()),
        );
        assert_eq!(
            before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            after.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{b:?}"
        );
    }
}
