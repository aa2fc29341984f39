//! `fold-constants`: snapshots of each rule, the cases where it must not
//! fire, and the values it computes.

mod common;

use common::{count_op, run, run_snapshot, M};
use npuopt_ir::attr;
use npuopt_ir::{DType, Model, Tensor};

const PASS: &[&str] = &["fold-constants"];

fn value_i64(m: &Model, name: &str) -> Vec<i64> {
    let v = m.graph.value_by_name(name).expect("value");
    m.graph.constant(v).expect("a constant").to_i64().unwrap()
}

fn value_f32(m: &Model, name: &str) -> Vec<f32> {
    let v = m.graph.value_by_name(name).expect("value");
    m.graph.constant(v).expect("a constant").to_f32().unwrap()
}

fn dims(m: &Model, name: &str) -> Vec<i64> {
    let v = m.graph.value_by_name(name).expect("value");
    m.graph.constant(v).expect("a constant").dims().to_vec()
}

#[test]
fn constant_nodes_become_initializers() {
    let mut b = M::new("constants", 13);
    b.input("x", DType::FLOAT, &[1, 3])
        .constant("c", Tensor::from_f32("", &[3], &[1.0, 2.0, 3.0]))
        .node("Add", &["x", "c"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 3]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("fold_constants_constant_node", text);
    assert_eq!(count_op(&m, "Constant"), 0);
    assert_eq!(value_f32(&m, "c"), vec![1.0, 2.0, 3.0]);
}

/// The TorchScript flatten idiom: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])).
#[test]
fn shape_computation_folds_to_one_initializer() {
    let mut b = M::new("shape_chain", 13);
    b.input("x", DType::FLOAT, &[2, 3, 4, 4])
        .node("Shape", &["x"], &["s"], vec![])
        .constant("i0", Tensor::from_i64("", &[], &[0]))
        .node("Gather", &["s", "i0"], &["g"], vec![attr::int("axis", 0)])
        .constant("ax", Tensor::from_i64("", &[1], &[0]))
        .node("Unsqueeze", &["g", "ax"], &["u"], vec![])
        .constant("m1", Tensor::from_i64("", &[1], &[-1]))
        .node(
            "Concat",
            &["u", "m1"],
            &["shape"],
            vec![attr::int("axis", 0)],
        )
        .node("Reshape", &["x", "shape"], &["y"], vec![])
        .output("y", DType::FLOAT, &[2, 48]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("fold_constants_shape_chain", text);
    assert_eq!(value_i64(&m, "shape"), vec![2, -1]);
    assert_eq!(m.graph.node_count(), 1, "only the Reshape is left");
}

#[test]
fn float_arithmetic_in_f32() {
    let mut b = M::new("arith", 13);
    b.input("x", DType::FLOAT, &[2, 3])
        .init_f32("v", &[3], &[1.0, 4.0, 9.0])
        .init_f32("two", &[2, 1], &[2.0, 3.0])
        .node("Sqrt", &["v"], &["s"], vec![])
        .node("Reciprocal", &["s"], &["r"], vec![])
        .node("Neg", &["r"], &["n"], vec![])
        .node("Mul", &["n", "two"], &["k"], vec![])
        .node("Sub", &["k", "v"], &["d"], vec![])
        .node("Div", &["d", "two"], &["q"], vec![])
        .node("Add", &["x", "q"], &["y"], vec![])
        .output("y", DType::FLOAT, &[2, 3]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("fold_constants_arith", text);
    // Computed in f32, as a runtime would.
    let v = [1.0f32, 4.0, 9.0];
    let mut want = Vec::new();
    for t in [2.0f32, 3.0] {
        for &x in &v {
            want.push((-(1.0 / x.sqrt()) * t - x) / t);
        }
    }
    assert_eq!(value_f32(&m, "q"), want);
    assert_eq!(dims(&m, "q"), vec![2, 3]);
    assert_eq!(count_op(&m, "Add"), 1);
}

#[test]
fn integer_ops_follow_onnx_semantics() {
    let mut b = M::new("ints", 13);
    b.input("x", DType::FLOAT, &[4])
        .init_i64("a", &[4], &[-7, 7, -8, 9])
        .init_i64("two", &[], &[2])
        .node("Div", &["a", "two"], &["div"], vec![])
        .init_i64("idx", &[2], &[-1, 0])
        .node(
            "Gather",
            &["a", "idx"],
            &["gat"],
            vec![attr::int("axis", 0)],
        )
        .init_f32("f", &[4], &[-1.7, 1.7, -0.5, 2.5])
        .node(
            "Cast",
            &["f"],
            &["cast"],
            vec![attr::int("to", DType::INT64.0 as i64)],
        )
        .init_i64("st", &[1], &[-1])
        .init_i64("en", &[1], &[i64::MIN])
        .init_i64("ax", &[1], &[0])
        .init_i64("sp", &[1], &[-2])
        .node("Slice", &["a", "st", "en", "ax", "sp"], &["sl"], vec![])
        .init_i64("r0", &[], &[10])
        .init_i64("r1", &[], &[0])
        .init_i64("rd", &[], &[-3])
        .node("Range", &["r0", "r1", "rd"], &["rng"], vec![])
        .init_i64("sq_ax", &[1], &[-1])
        .init_i64("col", &[4, 1], &[1, 2, 3, 4])
        .node("Squeeze", &["col", "sq_ax"], &["sq"], vec![])
        .node(
            "Concat",
            &["div", "gat", "cast", "sl", "rng", "sq"],
            &["all"],
            vec![attr::int("axis", 0)],
        )
        .node(
            "Cast",
            &["all"],
            &["allf"],
            vec![attr::int("to", DType::FLOAT.0 as i64)],
        )
        .node("Shape", &["allf"], &["n"], vec![])
        .node(
            "Cast",
            &["n"],
            &["nf"],
            vec![attr::int("to", DType::FLOAT.0 as i64)],
        )
        .node("Add", &["x", "nf"], &["y"], vec![])
        .output("y", DType::FLOAT, &[4]);
    let mut m = b.model();
    let (_, _, changes) = run(&mut m, PASS);
    assert!(!changes.is_empty());
    // Div truncates toward zero (C semantics).
    assert_eq!(value_i64(&m, "div"), vec![-3, 3, -4, 4]);
    assert_eq!(value_i64(&m, "gat"), vec![9, -7]);
    // Cast truncates toward zero.
    assert_eq!(value_i64(&m, "cast"), vec![-1, 1, 0, 2]);
    // Negative start, end clamped to -1, step -2.
    assert_eq!(value_i64(&m, "sl"), vec![9, 7]);
    assert_eq!(value_i64(&m, "rng"), vec![10, 7, 4, 1]);
    assert_eq!(value_i64(&m, "sq"), vec![1, 2, 3, 4]);
    assert_eq!(dims(&m, "sq"), vec![4]);
    assert_eq!(value_i64(&m, "all").len(), 20);
    assert_eq!(value_f32(&m, "nf"), vec![20.0]);
    assert_eq!(m.graph.node_count(), 1);
}

#[test]
fn old_opset_axes_attributes_transpose_and_constant_of_shape() {
    let mut b = M::new("old_opset", 11);
    b.input("x", DType::FLOAT, &[3, 2])
        .init_f32("w", &[1, 2, 3], &[1., 2., 3., 4., 5., 6.])
        .node("Squeeze", &["w"], &["sq"], vec![attr::ints("axes", &[0])])
        .node(
            "Transpose",
            &["sq"],
            &["t"],
            vec![attr::ints("perm", &[1, 0])],
        )
        .node("Unsqueeze", &["t"], &["u"], vec![attr::ints("axes", &[-1])])
        .init_i64("shp", &[2], &[3, 2])
        .node("Reshape", &["u", "shp"], &["r"], vec![])
        .node(
            "ConstantOfShape",
            &["shp"],
            &["ones"],
            vec![attr::tensor(
                "value",
                Tensor::from_f32("", &[1], &[1.0]).into_proto(),
            )],
        )
        .node("Add", &["r", "ones"], &["c"], vec![])
        .node("Add", &["x", "c"], &["y"], vec![])
        .output("y", DType::FLOAT, &[3, 2]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("fold_constants_old_opset", text);
    assert_eq!(value_f32(&m, "c"), vec![2., 5., 3., 6., 4., 7.]);
    assert_eq!(m.graph.node_count(), 1);
}

#[test]
fn large_constant_of_shape_read_once_is_left_alone() {
    let build = |dims: &[i64], readers: usize| {
        let mut b = M::new("big", 13);
        b.input("x", DType::FLOAT, dims)
            .init_i64("shp", &[dims.len() as i64], dims)
            .node("ConstantOfShape", &["shp"], &["fill"], vec![]);
        for i in 0..readers {
            let out = format!("y{i}");
            b.node("Add", &["x", "fill"], &[&out], vec![])
                .output(&out, DType::FLOAT, dims);
        }
        b.model()
    };
    // Over 1 MiB.
    let mut m = build(&[1, 65, 64, 64], 1);
    let (_, _, changes) = run(&mut m, PASS);
    assert!(changes.is_empty());
    assert_eq!(count_op(&m, "ConstantOfShape"), 1);
    // 32 KiB from 32 bytes of shape: > 64x growth.
    let mut m = build(&[1, 8, 32, 32], 1);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "ConstantOfShape"), 1);
    // The same result read twice is folded.
    let mut m = build(&[1, 8, 32, 32], 2);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "ConstantOfShape"), 0);
    // Small growth is folded.
    let mut m = build(&[1, 2, 2], 1);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "ConstantOfShape"), 0);
}

#[test]
fn large_transpose_of_a_weight_only_it_reads_folds() {
    // LeViT's stage-3 Linear: MatMul(x, Transpose(W)), W 768×384 f32
    // (1.2 MB). Folding frees W: no growth, and the MatMul gets a constant.
    let build = |shared: bool| {
        let (k, n) = (384i64, 768i64);
        let w: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32).collect();
        let mut b = M::new("big_t", 13);
        b.input("x", DType::FLOAT, &[1, k])
            .init_f32("w", &[n, k], &w)
            .node(
                "Transpose",
                &["w"],
                &["wt"],
                vec![attr::ints("perm", &[1, 0])],
            )
            .node("MatMul", &["x", "wt"], &["y"], vec![])
            .output("y", DType::FLOAT, &[1, n]);
        if shared {
            b.node("Identity", &["w"], &["w_again"], vec![]).output(
                "w_again",
                DType::FLOAT,
                &[n, k],
            );
        }
        b.model()
    };
    let mut m = build(false);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "Transpose"), 0);
    // W read elsewhere too: folding would store it twice.
    let mut m = build(true);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "Transpose"), 1);
}

#[test]
fn graph_input_with_a_default_is_not_folded() {
    let mut b = M::new("default_input", 13);
    b.input("x", DType::FLOAT, &[3])
        .input("w", DType::FLOAT, &[3])
        .init_f32("w", &[3], &[1., 2., 3.])
        .node("Neg", &["w"], &["nw"], vec![])
        .node("Add", &["x", "nw"], &["y"], vec![])
        .output("y", DType::FLOAT, &[3]);
    let mut m = b.model();
    let (_, _, changes) = run(&mut m, PASS);
    assert!(changes.is_empty());
    assert_eq!(count_op(&m, "Neg"), 1);
}

#[test]
fn unsure_cases_are_not_folded() {
    let mut b = M::new("unsure", 13);
    b.input("x", DType::FLOAT, &[1])
        // Division by zero in int64.
        .init_i64("a", &[1], &[1])
        .init_i64("z", &[1], &[0])
        .node("Div", &["a", "z"], &["d"], vec![])
        // Gather out of range.
        .init_i64("oob", &[1], &[3])
        .node("Gather", &["a", "oob"], &["g"], vec![])
        // NaN to int.
        .init_f32("nan", &[1], &[f32::NAN])
        .node(
            "Cast",
            &["nan"],
            &["c"],
            vec![attr::int("to", DType::INT64.0 as i64)],
        )
        // Shape of a value with a symbolic dim.
        .node("Shape", &["x2"], &["s"], vec![])
        .node(
            "Concat",
            &["d", "g", "c", "s"],
            &["all"],
            vec![attr::int("axis", 0)],
        )
        .output("all", DType::INT64, &[4]);
    b.input("x2", DType::FLOAT, &[1]);
    // Make x2's dim symbolic.
    let mut proto = npuopt_ir::import::decode(b.bytes().into()).unwrap();
    let g = proto.graph.as_mut().unwrap();
    let ty = g.input[1].r#type.as_mut().unwrap();
    if let Some(npuopt_ir::proto::type_proto::Value::TensorType(t)) = ty.value.as_mut() {
        t.shape.as_mut().unwrap().dim[0].value =
            Some(npuopt_ir::proto::tensor_shape_proto::dimension::Value::DimParam("n".into()));
    }
    let mut m = npuopt_ir::import::from_proto(proto, None).unwrap();
    run(&mut m, PASS);
    for op in ["Div", "Gather", "Cast", "Shape", "Concat"] {
        assert_eq!(count_op(&m, op), 1, "{op} must stay");
    }
}

/// TinyViT's window padding, `(w - h % w) % w` on constants, folds (Mod
/// was once not evaluated, which left the shapes behind it unknown); an op
/// the evaluator does not compute on constant inputs is reported with its
/// name; a DequantizeLinear of constant weights stays silently (it is the
/// quantized model's format).
#[test]
fn mod_folds_and_an_unevaluated_op_on_constants_says_so() {
    let mut b = M::new("mod_sin", 13);
    b.input("x", DType::FLOAT, &[2])
        .init_i64("h", &[1], &[30])
        .init_i64("w", &[1], &[7])
        .node("Mod", &["h", "w"], &["r"], vec![])
        .node("Sub", &["w", "r"], &["d"], vec![])
        .node("Mod", &["d", "w"], &["pad"], vec![])
        .output("pad", DType::INT64, &[1])
        .init_f32("angle", &[2], &[0.5, 1.0])
        .node("Sin", &["angle"], &["s"], vec![])
        .node("Add", &["x", "s"], &["y"], vec![])
        .output("y", DType::FLOAT, &[2])
        .init_i64("q", &[2], &[3, 4])
        .init_f32("scale", &[], &[0.5])
        .node(
            "Cast",
            &["q"],
            &["q8"],
            vec![attr::int("to", DType::INT8.0 as i64)],
        )
        .node("DequantizeLinear", &["q8", "scale"], &["dq"], vec![])
        .node("Add", &["x", "dq"], &["z"], vec![])
        .output("z", DType::FLOAT, &[2]);
    let mut m = b.model();
    let report = npuopt_passes::run_pipeline(&mut m, PASS, Default::default()).unwrap();
    assert_eq!(value_i64(&m, "pad"), vec![5]);
    assert_eq!(count_op(&m, "Mod"), 0);
    assert_eq!(count_op(&m, "Sin"), 1);
    assert_eq!(count_op(&m, "DequantizeLinear"), 1);
    let reasons: Vec<&str> = report.skips.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["Sin 'n_s' has only constant inputs but is not folded: npuopt does not evaluate Sin (its float result depends on the math library)"],
        "{reasons:?}"
    );
}
