//! `depthwise-to-group`: a depthwise conv becomes a group conv of the
//! target's group width, with block-diagonal weights (REWRITES.md §6).
//! Hardware pass: cost-gated, does nothing without a target.
//!
//! Before:  y = Conv(x, W, b), G = Cin, W: [Cout, 1, kh, kw], m = Cout/Cin
//! After:   y = Conv(x, W', b), G' = Cin/g, W': [Cout, g, kh, kw]
//!
//! Formula (g = the target's `group.align_per_group`):
//! `W'[o, j, :, :] = W[o, 0, :, :]` if `j = (o div m) mod g`, else 0.
//! Exact: output `o` still reads only input channel `o div m` (its group
//! `o div (m·g)` holds input channels `g·(o div (m·g)) …` of which `o div m`
//! is the `(o div m) mod g`-th). The bias, window and output are unchanged;
//! the conv executes `g×` the MACs, and after fine-tuning the zeros are
//! free capacity (AXSpine's argument).
//!
//! Preconditions (else a skip with the reason):
//! * a 2-D Conv with G = Cin > 1 and one input channel per group, float
//!   constant weight;
//! * `Cin mod g = 0` (G' = 1 when Cin = g: a dense conv, block-diagonal);
//! * a target is given; its group mode is native. On targets that lower
//!   group conv to split + concat, or to the CPU, the proposal is vetoed
//!   (REWRITES §6: never there) — still estimated, so the report shows why.
//!   A veto does not apply when G' = 1 (a dense conv is not split); the
//!   cost model decides.
//!
//! Cost gate: [`PassContext::propose`] with `adds_capacity`: under
//! `--intent deploy` the estimate must fall, under `--intent capacity` the
//! model's estimate must stay within the capacity budget.

use npuopt_ir::{Graph, NodeId, Op};
use npuopt_targets::GroupMode;

use crate::change::Change;
use crate::conv_algebra::read_conv;
use crate::gate::Proposal;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};
use crate::rewrite::set_constant_input;

pub struct DepthwiseToGroup;

const NAME: &str = "depthwise-to-group";
const RULE: &str = "depthwise-to-group";

impl Pass for DepthwiseToGroup {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "needs --target: depthwise conv → group conv of the target's group width (block-diagonal, exact) where the cost model allows"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let Some(target) = cx.target() else {
            return Ok(());
        };
        let width = target.group.align_per_group as usize;
        let mode = target.group.mode;
        let tname = target.name().to_string();
        if width <= 1 {
            return Ok(());
        }
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            if !matches!(g.node(id).op(), Op::Conv(_)) {
                return;
            }
            try_convert(g, id, width, mode, &tname, cx);
        })
    }
}

fn try_convert(
    g: &mut Graph,
    id: NodeId,
    width: usize,
    mode: GroupMode,
    tname: &str,
    cx: &mut PassContext,
) {
    let Ok(p) = read_conv(g, id) else { return };
    let w = &p.weight;
    if !(w.group > 1 && w.group == w.cin && w.cin_g() == 1) {
        return;
    }
    let name = g.node(id).name().to_string();
    if !w.cin.is_multiple_of(width) {
        return cx.skip(
            NAME,
            RULE,
            &name,
            format!(
                "'{name}': {} channels are not a multiple of the group width {width} on {tname}",
                w.cin
            ),
        );
    }
    let groups = w.cin / width;
    let veto = match (mode, groups > 1) {
        (GroupMode::Split, true) => Some(format!(
            "group conv is lowered to split + concat on {tname}"
        )),
        (GroupMode::Cpu, true) => Some(format!("group conv falls back to the CPU on {tname}")),
        _ => None,
    };
    let proposal = Proposal {
        pass: NAME,
        rule: RULE,
        node: &name,
        adds_capacity: true,
        veto,
    };
    cx.propose(g, proposal, |g| Ok(convert(g, id, groups, width, &p)));
}

/// Rewrites the conv in place: new weight, new group count.
fn convert(
    g: &mut Graph,
    id: NodeId,
    groups: usize,
    width: usize,
    p: &crate::conv_algebra::ConvParams,
) -> Change {
    let name = g.node(id).name().to_string();
    let w = p.weight.regroup(groups);
    set_constant_input(
        g,
        id,
        1,
        &format!("{name}.weight_grouped"),
        p.dtype,
        &w.dims(),
        &w.data,
    );
    if let Op::Conv(mut c) = g.node(id).op().clone() {
        c.group = groups as i64;
        g.set_op(id, Op::Conv(c));
    }
    Change::new(
        NAME,
        RULE,
        &[&name],
        format!(
            "depthwise {}×{} conv '{name}' on {} channels{} → {groups} group{} of {width} channels (block-diagonal, {width}× the MACs)",
            w.kh,
            w.kw,
            w.cin,
            if w.cout > w.cin {
                format!(" (multiplier {})", w.cout / w.cin)
            } else {
                String::new()
            },
            if groups == 1 { "" } else { "s" }
        ),
    )
}
