//! merge-branches: one snapshot and one tract check per synthetic block
//! (RepVGG, MobileOne, RepGhost, DBB, ACNet, FastViT), and the cases that
//! must not fire, with the reason the report gives.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt_fixtures::{ConvSpec, ModelBuilder, PoolSpec};

/// The passes that bring a training block to merge-branches' input form.
const PIPE: &[&str] = &["fold-batchnorm", "merge-branches", "eliminate-dead"];

/// Runs fold-batchnorm (setup), then merge-branches and eliminate-dead; the
/// snapshot shows only the merge step and lists only merge-branches'
/// changes. `before` stays the original model, for tract.
fn run_merge(m: &ModelProto) -> Run {
    use npuopt::ir::dump::dump;
    let mut setup = run(m, &["fold-batchnorm", "eliminate-dead"]).model;
    let before = dump(&setup.graph).unwrap();
    let report = npuopt_passes::run_pipeline(
        &mut setup,
        &["merge-branches", "eliminate-dead"],
        Default::default(),
    )
    .expect("pipeline runs");
    let mine: Vec<_> = report
        .changes
        .iter()
        .filter(|c| c.pass == "merge-branches")
        .cloned()
        .collect();
    let snapshot =
        npuopt_passes::change::snapshot_text(&before, &dump(&setup.graph).unwrap(), &mine);
    Run {
        before: prost::Message::encode_to_vec(m),
        model: setup,
        report,
        snapshot,
    }
}

fn merges_into(name: &str, convs: usize) -> Run {
    let r = run_merge(&fixture(name));
    assert_eq!(count(&r.model, "Conv"), convs, "{name}\n{}", r.snapshot);
    for op in ["Add", "Sub", "Sum", "BatchNormalization", "AveragePool"] {
        assert_eq!(count(&r.model, op), 0, "{name}: {op} left\n{}", r.snapshot);
    }
    assert!(
        r.report.changes.iter().any(|c| c.pass == "merge-branches"),
        "{name}: {:?}",
        r.report.changes
    );
    assert_verified(&r, name);
    insta::assert_snapshot!(format!("merge_branches_{name}"), r.snapshot);
    r
}

#[test]
fn repvgg_block() {
    merges_into("repvgg_block", 1);
}

#[test]
fn repvgg_block_stride2() {
    merges_into("repvgg_block_stride2", 1);
}

#[test]
fn mobileone_block() {
    let r = merges_into("mobileone_block", 2);
    assert_eq!(count(&r.model, "Relu"), 2);
}

#[test]
fn repghost_block() {
    // The 1×1 primary conv stays; the depthwise conv absorbs the BN.
    merges_into("repghost_block", 2);
}

#[test]
fn dbb_block_exact() {
    // The average branch (pool of a bias-free 1×1 conv) is one branch of
    // x; the 1×1 → 3×3 branch keeps its leading 1×1 conv for
    // merge-sequential-convs.
    let r = run_merge(&fixture("dbb_block_exact"));
    assert_verified(&r, "dbb_block_exact");
    assert_eq!(count(&r.model, "AveragePool"), 0, "{}", r.snapshot);
    insta::assert_snapshot!("merge_branches_dbb_block_exact", r.snapshot);
    // The default pipeline takes the whole block to one conv, as DBB's
    // deploy form.
    let r = run(&fixture("dbb_block_exact"), &npuopt::default_passes());
    assert_verified(&r, "dbb_block_exact, default pipeline");
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_eq!(r.model.graph.node_count(), 1, "{}", r.snapshot);
}

#[test]
fn dbb_avg_branch_with_a_biased_conv_and_padding_is_refused() {
    // dbb_block: the 1×1 before the pool carries a BN (a bias once folded)
    // and the pool pads: the border would average the bias with zeros.
    let r = run(&fixture("dbb_block"), &npuopt::default_passes());
    assert_verified(&r, "dbb_block");
    assert_eq!(count(&r.model, "AveragePool"), 1, "{}", r.snapshot);
    assert!(
        r.report
            .skips
            .iter()
            .any(|s| s.reason.contains("would see the 1×1 conv's bias")),
        "{:?}",
        r.report.skips
    );
}

#[test]
fn acnet_block() {
    merges_into("acnet_block", 1);
}

#[test]
fn fastvit_repmixer() {
    let r = merges_into("fastvit_repmixer", 1);
    assert_eq!(count(&r.model, "Mul"), 0);
}

#[test]
fn layer_scale_residual() {
    merges_into("layer_scale", 1);
}

#[test]
fn residual_around_nonlinear_blocks_is_not_a_candidate() {
    let r = run(&fixture("residual_block"), PIPE);
    assert_eq!(count(&r.model, "Add"), 1);
    assert!(!r.report.changes.iter().any(|c| c.pass == "merge-branches"));
    assert!(!r.report.skips.iter().any(|s| s.pass == "merge-branches"));
}

// ---- must not fire ----

/// Runs merge-branches alone on a model that must not change, and returns
/// the skip reasons it gave.
fn refused(m: &ModelProto) -> Vec<String> {
    let r = run(m, &["merge-branches"]);
    assert!(r.report.changes.is_empty(), "{:?}", r.report.changes);
    assert_eq!(
        npuopt::ir::dump::dump(&r.model.graph).unwrap(),
        npuopt::ir::dump::dump(&import_proto(m).graph).unwrap(),
        "the graph changed"
    );
    r.report
        .skips
        .iter()
        .filter(|s| s.pass == "merge-branches")
        .map(|s| s.reason.clone())
        .collect()
}

fn two_branches(a: ConvSpec, b: ConvSpec, cin: i64) -> ModelProto {
    let mut m = ModelBuilder::new("two_branches", 13);
    let x = m.input("x", &[1, cin, 12, 12]);
    let p = m.conv(&x, a);
    let q = m.conv(&x, b);
    let y = m.add(&p, &q);
    m.output(&y);
    m.build()
}

fn assert_reason(reasons: &[String], needle: &str) {
    assert!(
        reasons.iter().any(|r| r.contains(needle)),
        "no reason containing '{needle}': {reasons:?}"
    );
}

#[test]
fn different_strides_are_refused() {
    // Equal output shapes (3×3 on 12×12), different strides: a 4×4 stride
    // 3 and a 1×1 stride 4.
    let m = two_branches(
        ConvSpec::new(4, 4).stride(3),
        ConvSpec::new(4, 1).stride(4),
        4,
    );
    assert_reason(&refused(&m), "different strides");
}

#[test]
fn dilation_is_refused() {
    let m = two_branches(
        ConvSpec::new(4, 3).pad(2).dilation(2),
        ConvSpec::new(4, 1),
        4,
    );
    assert_reason(&refused(&m), "dilation");
}

#[test]
fn misaligned_pads_are_refused() {
    // Same kernel, same output shape, windows shifted by one pixel.
    let m = two_branches(
        ConvSpec::new(4, 3).pad(1),
        ConvSpec::new(4, 3).pads([0, 0, 2, 2]),
        4,
    );
    assert_reason(&refused(&m), "different pads");
    // A 2×2 window starting one pixel before the 3×3 one: it does not fit
    // inside the 3×3 window.
    let m = two_branches(
        ConvSpec::new(4, 3).pads([0, 0, 2, 2]),
        ConvSpec::new(4, 2).pads([1, 1, 0, 0]),
        4,
    );
    assert_reason(&refused(&m), "misaligned");
}

#[test]
fn off_centre_windows_that_fit_merge_exactly() {
    // A 1×1 beside a 3×3 padded only at the top and left reads the 3×3's
    // last tap: not centred, but inside the window, so still exact.
    let m = two_branches(
        ConvSpec::new(4, 3).pads([2, 2, 0, 0]),
        ConvSpec::new(4, 1),
        4,
    );
    let r = run(&m, PIPE);
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_verified(&r, "off_centre");
}

#[test]
fn avg_pool_without_count_include_pad_is_refused() {
    let mut m = ModelBuilder::new("avg_no_cip", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let c = m.conv(&x, ConvSpec::new(4, 3).pad(1));
    let p = m.avg_pool(
        &x,
        PoolSpec::new(3).stride(1).pad(1).count_include_pad(false),
    );
    let y = m.add(&c, &p);
    m.output(&y);
    assert_reason(&refused(&m.build()), "count_include_pad=0");
}

#[test]
fn avg_pool_with_count_include_pad_merges() {
    let mut m = ModelBuilder::new("avg_cip", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let c = m.conv(&x, ConvSpec::new(4, 3).pad(1).group(2));
    let p = m.avg_pool(
        &x,
        PoolSpec::new(3).stride(1).pad(1).count_include_pad(true),
    );
    let y = m.add(&c, &p);
    m.output(&y);
    let r = run_merge(&m.build());
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_verified(&r, "avg_cip");
    insta::assert_snapshot!("merge_branches_avg_pool", r.snapshot);
}

#[test]
fn branch_read_elsewhere_is_refused() {
    let mut m = ModelBuilder::new("shared_branch", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let c = m.conv(&x, ConvSpec::new(4, 3).pad(1));
    let d = m.conv(&x, ConvSpec::new(4, 1));
    let y = m.add(&c, &d);
    m.output(&y);
    m.output(&d);
    assert_reason(&refused(&m.build()), "other readers");
}

#[test]
fn non_float_weights_are_refused() {
    use npuopt::ir::proto::tensor_proto::DataType;
    let mut m = ModelBuilder::new("int_weights", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let c = m.conv(&x, ConvSpec::new(4, 3).pad(1));
    let d = m.conv(&x, ConvSpec::new(4, 1));
    let y = m.add(&c, &d);
    m.output(&y);
    let mut proto = m.build();
    // Make the 1×1's weight an int8 tensor (a quantized export).
    let g = proto.graph.as_mut().unwrap();
    let w = g
        .initializer
        .iter_mut()
        .find(|t| t.dims == vec![4, 4, 1, 1])
        .unwrap();
    w.data_type = Some(DataType::Int8 as i32);
    w.raw_data = Some(vec![1u8; 16].into());
    w.float_data.clear();
    assert_reason(&refused(&proto), "not a float type");
}

#[test]
fn identity_beside_a_strided_conv_is_refused() {
    // On a 1×1 map a stride-2 1×1 conv keeps the shape, so the Add is
    // well-formed; the identity is stride 1.
    let mut m = ModelBuilder::new("identity_strided", 13);
    let x = m.input("x", &[1, 4, 1, 1]);
    let c = m.conv(&x, ConvSpec::new(4, 1).stride(2));
    let y = m.add(&x, &c);
    m.output(&y);
    assert_reason(&refused(&m.build()), "different strides");
}

#[test]
fn auto_pad_same_is_resolved_exactly() {
    use npuopt::ir::attr;
    let mut m = ModelBuilder::new("auto_pad", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let c = m.conv(&x, ConvSpec::new(4, 3).pad(1));
    let d = m.conv(&x, ConvSpec::new(4, 1));
    let y = m.add(&c, &d);
    m.output(&y);
    let mut proto = m.build();
    // Rewrite the 3×3's pads as auto_pad=SAME_UPPER.
    let g = proto.graph.as_mut().unwrap();
    let conv = g
        .node
        .iter_mut()
        .find(|n| n.op_type.as_deref() == Some("Conv"))
        .unwrap();
    conv.attribute.retain(|a| a.name.as_deref() != Some("pads"));
    conv.attribute.push(attr::string("auto_pad", "SAME_UPPER"));
    let r = run(&proto, PIPE);
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_verified(&r, "auto_pad");
}

/// QARepVGG keeps a BN after the branches' sum, even in deploy form: the
/// default pipeline merges the branches, then folds the BN into the merged
/// conv — one conv left.
#[test]
fn bn_after_the_merged_sum_folds_qarepvgg() {
    let mut m = ModelBuilder::new("qarepvgg", 13);
    let x = m.input("x", &[1, 8, 10, 10]);
    let a = m.conv(&x, ConvSpec::new(8, 3).pad(1).bias(true));
    let b = m.conv(&x, ConvSpec::new(8, 1).bias(true));
    let s = m.add(&a, &b);
    let s = m.add(&s, &x);
    let n = m.batch_norm(&s);
    let y = m.relu(&n);
    m.output(&y);
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let r = run(&m.build(), &passes);
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_eq!(count(&r.model, "BatchNormalization"), 0, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Add"), 0, "{}", r.snapshot);
    assert_verified(&r, "qarepvgg");
}

/// The weights merge-branches absorbs were computed by fold-batchnorm (the
/// convs' own weights, rewritten in place): the moment nothing reads them
/// they are freed, not held until eliminate-dead, which this run leaves
/// out. What the run leaves unread is the input's own — the three BNs'
/// parameters and a weight nothing ever read, written byte for byte — and
/// the absorbed folded biases, too small to drop.
#[test]
fn absorbed_weights_are_freed_at_once_and_the_inputs_own_are_kept() {
    use npuopt::ir::proto::TensorProto;
    use npuopt::ir::Graph;
    use prost::Message;
    use std::collections::HashMap;
    // RepVGG's training block, with weights large enough to be dropped.
    let mut b = ModelBuilder::new("repvgg_block_32", 13);
    let x = b.input("x", &[1, 32, 8, 8]);
    let dense = b.conv(&x, ConvSpec::new(32, 3).pad(1));
    let dense = b.batch_norm(&dense);
    let one = b.conv(&x, ConvSpec::new(32, 1));
    let one = b.batch_norm(&one);
    let id = b.batch_norm(&x);
    let s = b.add(&dense, &one);
    let s = b.add(&s, &id);
    let y = b.relu(&s);
    b.output(&y);
    let mut m = b.build();
    let g = m.graph.as_mut().unwrap();
    let mut spare = g
        .initializer
        .iter()
        .max_by_key(|t| t.raw_data.as_ref().map_or(0, |r| r.len()))
        .unwrap()
        .clone();
    spare.name = Some("spare".into());
    g.initializer.push(spare);
    let given: HashMap<String, TensorProto> = g
        .initializer
        .iter()
        .map(|t| (t.name.clone().unwrap(), t.clone()))
        .collect();
    let r = run(&m, &["fold-batchnorm", "merge-branches"]);
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    let g = &r.model.graph;
    let conv = g
        .node_ids()
        .find(|&n| g.node(n).op_type() == "Conv")
        .unwrap();
    let merged: u64 = g.node(conv).inputs()[1..]
        .iter()
        .flatten()
        .map(|&v| g.constant(v).unwrap().byte_size())
        .sum();
    assert_eq!(merged, (32 * 32 * 3 * 3 + 32) * 4);
    let written = npuopt::ir::proto::ModelProto::decode(&r.model.to_bytes().unwrap()[..]).unwrap();
    let written: HashMap<String, TensorProto> = written
        .graph
        .unwrap()
        .initializer
        .into_iter()
        .map(|t| (t.name.clone().unwrap(), t))
        .collect();
    let unread: Vec<_> = g
        .initializers()
        .filter(|&v| g.value(v).uses().is_empty() && !g.is_graph_output(v))
        .map(|v| {
            (
                g.value(v).name().to_string(),
                g.constant(v).unwrap().byte_size(),
            )
        })
        .collect();
    let (own, computed): (Vec<_>, Vec<_>) = unread
        .iter()
        .partition(|(n, _)| given.get(n).is_some_and(|t| written.get(n) == Some(t)));
    // The input's own, byte for byte: 3 BNs × 4 parameters and the spare.
    assert_eq!(own.len(), 3 * 4 + 1, "{own:?}");
    assert!(own.iter().any(|(n, _)| n == "spare"));
    // Computed and unread: only the two small folded biases; the folded
    // weights are gone, and the computed bytes left are the merged conv's
    // and those biases.
    assert_eq!(computed.len(), 2, "{computed:?}");
    assert!(computed.iter().all(|&&(_, b)| b < Graph::MIN_DROP_BYTES));
    let small: u64 = computed.iter().map(|(_, b)| b).sum();
    assert_eq!(g.computed_constant_bytes(), merged + small);
    assert_eq!(written.len(), 2 + unread.len(), "{:?}", written.keys());
}
