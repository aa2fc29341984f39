//! `merge-sequential-convs`: two convs with nothing between become one
//! (REWRITES.md §3).
//!
//! Before:  y = Conv_2(Conv_1(x, W1, b1), W2, b2)
//! After:   y = Conv(x, W', b')
//!
//! * **k×k then 1×1** (rule `kxk-1x1`; the 1×1: G = 1, stride 1, no pads):
//!   always exact. With `W1` expanded block-diagonally to one group,
//!   `W'[o,i] = Σ_m W2[o,m]·W1[m,i]`, `b' = W2·b1 + b2`; the window is
//!   the first conv's.
//! * **1×1 then k×k** (rule `1x1-kxk`, or `1x1-depthwise` when the k×k is
//!   depthwise; the 1×1: G = 1, stride 1, no pads): with `m(o, j)` the
//!   `j`-th input channel of output `o`'s group in the k×k,
//!   `W'[o,i,:,:] = Σ_j W2[o,j,:,:]·W1[m(o,j), i]`,
//!   `b'[o] = b2[o] + Σ_{j,kh,kw} W2[o,j,kh,kw]·b1[m(o,j)]`; dense
//!   (G = 1), the window is the second conv's. Exact only when the k×k has
//!   no padding or `b1 = 0` exactly: a padded border sees zeros where the
//!   merged conv would see `b1`.
//!
//! Preconditions: the first conv's output is read only by the second;
//! weights and biases are float constants of one dtype; shapes are known.
//! Cost: the rule fires when the merged conv's executed MACs and weight
//! bytes are at most the two convs' together. When either grows
//! (MobileDets' fused inverted bottleneck: 1×1 then depthwise → one dense
//! k×k; a ShuffleNet 1×1 → depthwise 3×3 pair: 7.8× the MACs), a target's
//! cost model decides: with `--target` the merge is applied only when the
//! estimate falls by more than the target's `[cost] heavier_margin`;
//! without one it records a skip with both figures ([`crate::footprint`],
//! [`PassContext::admit`]).

use npuopt_ir::macs::node_macs;
use npuopt_ir::{Graph, NodeId, Op};

use crate::change::Change;
use crate::conv_algebra::{add_conv, read_conv, view_conv, ConvParams, ConvView, Kernel, NewConv};
use crate::gate::Proposal;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};
use crate::rewrite::single_consumer;

/// The pass. The default pipeline runs it with the MAC gate on; a caller
/// (a cost model, a test) may turn it off to merge every exact pair.
#[derive(Clone, Copy, Debug)]
pub struct MergeSequentialConvs {
    /// Fire only when the merged conv has no more MACs than the two.
    pub require_no_more_macs: bool,
}

impl Default for MergeSequentialConvs {
    fn default() -> Self {
        MergeSequentialConvs {
            require_no_more_macs: true,
        }
    }
}

const NAME: &str = "merge-sequential-convs";

impl Pass for MergeSequentialConvs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "merge Conv → Conv with nothing between (k×k then 1×1; 1×1 then k×k or depthwise when exact) when it does not add MACs, or with --target when the cost model says it pays"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            if !matches!(g.node(id).op(), Op::Conv(_)) {
                return;
            }
            try_merge(g, id, self.require_no_more_macs, cx);
        })
    }
}

/// `(merged, original)` MACs of merging `first` into `second`: the merged
/// conv computes the second conv's output with the composed kernel. `None`
/// when a shape is unknown or the pair does not match a rule.
pub fn sequential_macs(g: &Graph, first: NodeId, second: NodeId) -> Option<(u64, u64)> {
    let p1 = view_conv(g, first).ok()?;
    let p2 = view_conv(g, second).ok()?;
    let (rule, _) = classify(&p1, &p2)?;
    let out = g.ty(g.node(second).output(0)?)?.concrete()?;
    let out_elems: u64 = out.iter().map(|&d| d as u64).product();
    let (_, cin, kh, kw) = merged_shape(rule, &p1, &p2);
    let merged = out_elems.checked_mul((cin * kh * kw) as u64)?;
    let original = node_macs(g, first)?.checked_add(node_macs(g, second)?)?;
    Some((merged, original))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    KxK1x1,
    OneKxK,
    OneDepthwise,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::KxK1x1 => "kxk-1x1",
            Rule::OneKxK => "1x1-kxk",
            Rule::OneDepthwise => "1x1-depthwise",
        }
    }
}

fn is_pointwise(p: &ConvView) -> bool {
    p.kh == 1
        && p.kw == 1
        && p.geometry.stride == [1, 1]
        && p.geometry.pads == [0; 4]
        && p.group == 1
}

/// Which rule applies, and why it is not exact if it is not.
fn classify(p1: &ConvView, p2: &ConvView) -> Option<(Rule, Option<String>)> {
    if p2.cin != p1.cout {
        return None;
    }
    if is_pointwise(p2) {
        return Some((Rule::KxK1x1, None));
    }
    if is_pointwise(p1) {
        let rule = if p2.group == p2.cin && p2.cin / p2.group == 1 {
            Rule::OneDepthwise
        } else {
            Rule::OneKxK
        };
        let padded = p2.geometry.pads != [0; 4];
        let biased = p1.bias.iter().any(|&b| b != 0.0);
        let why = (padded && biased).then(|| {
            "the k×k conv pads with zeros where the merged conv would see the 1×1's bias".into()
        });
        return Some((rule, why));
    }
    None
}

fn try_merge(g: &mut Graph, second: NodeId, gate: bool, cx: &mut PassContext) {
    let Some(v) = g.node(second).input(0) else {
        return;
    };
    let Some(first) = g.producer(v) else { return };
    if !matches!(g.node(first).op(), Op::Conv(_)) || single_consumer(g, v) != Some(second) {
        return;
    }
    let n1 = g.node(first).name().to_string();
    let n2 = g.node(second).name().to_string();
    let (Ok(p1), Ok(p2)) = (view_conv(g, first), view_conv(g, second)) else {
        return;
    };
    let Some((rule, not_exact)) = classify(&p1, &p2) else {
        return;
    };
    let skip = |cx: &mut PassContext, why: String| {
        cx.skip(
            NAME,
            rule.name(),
            &n2,
            format!("'{n1}' → '{n2}' is not merged: {why}"),
        )
    };
    if let Some(why) = not_exact {
        return skip(cx, why);
    }
    if p1.dtype != p2.dtype {
        return skip(cx, "the two weights differ in dtype".into());
    }
    // The merged weight is computed only once the rewrite is admitted: a
    // rejected proposal (FastViT's depthwise 7×7 → 1×1 to 1536 channels
    // would be a 29 M-weight dense 7×7, +700% MACs) costs its bias and
    // shape, not a 230 MB f64 kernel on every iteration.
    let (cout, cin, kh, kw) = merged_shape(rule, &p1, &p2);
    let bias = match rule {
        Rule::KxK1x1 => kxk_then_1x1_bias(&p1, &p2),
        Rule::OneKxK | Rule::OneDepthwise => one_then_kxk_bias(&p1, &p2),
    };
    let (dtype, geometry) = match rule {
        Rule::KxK1x1 => (p1.dtype, p1.geometry),
        Rule::OneKxK | Rule::OneDepthwise => (p2.dtype, p2.geometry),
    };
    drop((p1, p2));
    let has_bias = bias_stored(&bias);
    let merge = move |g: &mut Graph| -> Result<Change, String> {
        let p1 = read_conv(g, first)?;
        let p2 = read_conv(g, second)?;
        let w = match rule {
            Rule::KxK1x1 => kxk_then_1x1(&p1, &p2),
            Rule::OneKxK | Rule::OneDepthwise => one_then_kxk(&p1, &p2),
        };
        drop((p1, p2));
        let merged = NewConv::from_kernel(w, bias, dtype, geometry);
        Ok(apply_merge(g, first, second, rule, &merged))
    };
    if !gate {
        match merge(g) {
            Ok(change) => return cx.record(change),
            Err(why) => return skip(cx, why),
        }
    }
    let out = g.node(second).output(0).expect("an output");
    let growth = crate::footprint::conv_growth_of(
        g,
        &[first, second],
        out,
        (cout * cin * kh * kw) as u64,
        cout,
        if has_bias { cout as u64 } else { 0 },
        dtype,
    );
    let proposal = Proposal {
        pass: NAME,
        rule: rule.name(),
        node: &n2,
        adds_capacity: false,
        veto: None,
    };
    cx.admit(g, proposal, growth, merge);
}

/// Whether `add_conv` stores this bias (not when every value is zero).
fn bias_stored(bias: &[f64]) -> bool {
    bias.iter().any(|&b| b != 0.0)
}

/// `(cout, cin, kh, kw)` of the merged conv (one group).
fn merged_shape(rule: Rule, p1: &ConvView, p2: &ConvView) -> (usize, usize, usize, usize) {
    match rule {
        Rule::KxK1x1 => (p2.cout, p1.cin, p1.kh, p1.kw),
        Rule::OneKxK | Rule::OneDepthwise => (p2.cout, p1.cin, p2.kh, p2.kw),
    }
}

/// `b' = W2·b1 + b2` of [`kxk_then_1x1`], summed in its order.
fn kxk_then_1x1_bias(p1: &ConvView, p2: &ConvView) -> Vec<f64> {
    let cmid = p1.cout;
    let mut bias = p2.bias.clone();
    for (o, b) in bias.iter_mut().enumerate() {
        for m in 0..cmid {
            let a = p2.values.get(o * cmid + m);
            if a == 0.0 {
                continue;
            }
            *b += a * p1.bias[m];
        }
    }
    bias
}

/// `b'[o] = b2[o] + Σ_{j,y,x} W2[o,j,y,x]·b1[m(o,j)]` of [`one_then_kxk`],
/// summed in its order.
fn one_then_kxk_bias(p1: &ConvView, p2: &ConvView) -> Vec<f64> {
    let (cin_g, cout_g) = (p2.cin / p2.group, p2.cout / p2.group);
    let taps = p2.kh * p2.kw;
    let mut bias = p2.bias.clone();
    for (o, b) in bias.iter_mut().enumerate() {
        let first_mid = (o / cout_g) * cin_g;
        for j in 0..cin_g {
            let m = first_mid + j;
            for t in 0..taps {
                let a = p2.values.get((o * cin_g + j) * taps + t);
                if a == 0.0 {
                    continue;
                }
                *b += a * p1.bias[m];
            }
        }
    }
    bias
}

/// Replaces `first` → `second` by the merged conv.
fn apply_merge(
    g: &mut Graph,
    first: NodeId,
    second: NodeId,
    rule: Rule,
    merged: &NewConv,
) -> Change {
    let n1 = g.node(first).name().to_string();
    let n2 = g.node(second).name().to_string();
    let x = g.node(first).input(0).expect("an input");
    let out = g.node(second).output(0).expect("an output");
    let (id, new_out) = add_conv(g, &format!("{n2}_merged"), x, merged, second);
    g.replace_all_uses(out, new_out);
    g.remove_node(second);
    g.remove_node(first);
    let added = g.node(id).name().to_string();
    let k = merged.geometry.kernel;
    Change::new(
        NAME,
        rule.name(),
        &[&n1, &n2],
        format!(
            "merged '{n1}' → '{n2}' into one {}×{} conv ({} → {} channels)",
            k[0], k[1], merged.cin, merged.cout
        ),
    )
    .removed(&[&n1, &n2])
    .added(&[&added])
}

/// `W'[o,i] = Σ_m W2[o,m]·W1[m,i]`, `b' = W2·b1 + b2`; the first window.
///
/// A grouped first conv is read as it is stored: `W1[m]` is non-zero only
/// on the input channels of `m`'s group, so the product touches
/// `cout·cmid·(cin/G1)·k²` weights, not `cout·cmid·cin·k²` (a depthwise
/// 7×7 on 384 channels into a 1×1 to 1152: 21 M multiply-adds, not 8.3 G).
fn kxk_then_1x1(p1: &ConvParams, p2: &ConvParams) -> Kernel {
    let w1 = &p1.weight;
    let (cout, cmid, cin) = (p2.weight.cout, w1.cout, w1.cin);
    let (kh, kw) = (w1.kh, w1.kw);
    let mut w = Kernel::zeros(cout, cin, 1, kh, kw);
    let taps = cin * kh * kw;
    let group_taps = w1.cin_g() * kh * kw;
    for o in 0..cout {
        for m in 0..cmid {
            let a = p2.weight.data[o * cmid + m];
            if a == 0.0 {
                continue;
            }
            // m's filter, and where its group's inputs sit in a dense row.
            let src = &w1.data[m * group_taps..(m + 1) * group_taps];
            let first_in = (m / w1.cout_g()) * w1.cin_g();
            let row = o * taps + first_in * kh * kw;
            let dst = &mut w.data[row..row + group_taps];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += a * s);
        }
    }
    w
}

/// `W'[o,i,:,:] = Σ_j W2[o,j,:,:]·W1[m(o,j), i]`; the second window.
fn one_then_kxk(p1: &ConvParams, p2: &ConvParams) -> Kernel {
    let w2 = &p2.weight;
    let cin = p1.weight.cin;
    let (kh, kw) = (w2.kh, w2.kw);
    let mut w = Kernel::zeros(w2.cout, cin, 1, kh, kw);
    for o in 0..w2.cout {
        let first_mid = (o / w2.cout_g()) * w2.cin_g();
        for j in 0..w2.cin_g() {
            let m = first_mid + j;
            for y in 0..kh {
                for x in 0..kw {
                    let a = w2.data[w2.idx(o, j, y, x)];
                    if a == 0.0 {
                        continue;
                    }
                    for i in 0..cin {
                        let d = w.idx(o, i, y, x);
                        w.data[d] += a * p1.weight.data[m * cin + i];
                    }
                }
            }
        }
    }
    w
}
