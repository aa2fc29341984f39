//! The biggest losses, each with the rewrite that would address it.
//!
//! A layer's loss is the cycles it takes beyond its useful MACs at peak
//! (`cycles − macs / P`); a layer is flagged when that loss is at least
//! [`MIN_SHARE`] of the model's total. One flag per layer, the most
//! specific cause first: CPU fallback, low depthwise utilisation, channel
//! padding, concat copy. Sorted by loss, largest first.

use serde::Serialize;

use super::{Bound, LayerCost, LayerKind};
use crate::cost::round_up;
use crate::schema::Target;

/// Smallest loss flagged, as a share of the total cycles.
pub const MIN_SHARE: f64 = 0.01;

/// Depthwise layers below this utilisation are flagged.
pub const LOW_DEPTHWISE_UTIL: f64 = 0.25;

/// Channel padding that wastes at least this share of executed MACs is
/// flagged.
pub const PAD_WASTE: f64 = 0.10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlagKind {
    Fallback,
    LowUtilization,
    ChannelPadding,
    ConcatCopy,
}

#[derive(Clone, Debug, Serialize)]
pub struct Flag {
    pub layer: String,
    pub kind: FlagKind,
    /// Cycles lost to the cause (an estimate).
    pub lost_cycles: u64,
    pub message: String,
    /// The pass that would address it, if there is one.
    pub rewrite: Option<&'static str>,
}

pub(crate) fn flags(t: &Target, layers: &[LayerCost], total: u64) -> Vec<Flag> {
    let peak = t.peak_macs_per_cycle();
    let mut out: Vec<Flag> = layers
        .iter()
        .filter_map(|l| {
            let lost = (l.cycles as f64 - l.macs as f64 / peak).max(0.0);
            if total == 0 || lost < MIN_SHARE * total as f64 {
                return None;
            }
            let (kind, message, rewrite) = cause(t, l)?;
            Some(Flag {
                layer: l.name.clone(),
                kind,
                lost_cycles: lost.round() as u64,
                message,
                rewrite,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.lost_cycles
            .cmp(&a.lost_cycles)
            .then_with(|| a.layer.cmp(&b.layer))
    });
    out
}

type Cause = (FlagKind, String, Option<&'static str>);

fn cause(t: &Target, l: &LayerCost) -> Option<Cause> {
    let name = &t.target.name;
    if !l.supported || l.bound == Bound::Fallback {
        let rewrite = match (&l.kind, t.group.mode) {
            // A depthwise conv rewritten as a group (or dense) conv runs on
            // the NPU's dense path.
            (LayerKind::Depthwise { .. }, _) => Some("depthwise-to-group"),
            _ => None,
        };
        let what = match &l.kind {
            LayerKind::Depthwise { kernel, .. } => {
                let k: Vec<String> = kernel.iter().map(|k| k.to_string()).collect();
                format!("{} depthwise conv", k.join("×"))
            }
            _ => l.op.clone(),
        };
        return Some((
            FlagKind::Fallback,
            format!("{what} falls back to the CPU on {name} ({})", l.note),
            rewrite,
        ));
    }
    match &l.kind {
        LayerKind::Depthwise { .. } if l.utilization < LOW_DEPTHWISE_UTIL => Some((
            FlagKind::LowUtilization,
            format!(
                "depthwise conv at {:.0}% utilisation",
                l.utilization * 100.0
            ),
            Some("depthwise-to-group"),
        )),
        LayerKind::DenseConv {
            cin,
            cout,
            cin_from_input,
        } if l.executed_macs as f64 > l.macs as f64 / (1.0 - PAD_WASTE) => {
            // Report the channel count that wastes more; input channels
            // fed by a graph input cannot be re-padded by a rewrite.
            let pin = round_up(*cin, t.align.cin);
            let pout = round_up(*cout, t.align.cout);
            let waste_in = (pin - cin) as f64 / pin as f64;
            let waste_out = (pout - cout) as f64 / pout as f64;
            let (c, p) = if *cin_from_input || waste_out >= waste_in {
                (*cout, pout)
            } else {
                (*cin, pin)
            };
            let zeros = (1.0 - l.macs as f64 / l.executed_macs as f64) * 100.0;
            if c == p {
                // Only the graph input's channels are padded: no rewrite
                // changes a model's input, but the loss is worth knowing.
                return (*cin_from_input && pin != *cin).then(|| {
                    (
                        FlagKind::ChannelPadding,
                        format!(
                            "{cin} input channels (a graph input): padded to {pin} by the hardware ({zeros:.0}% of executed MACs are zeros)"
                        ),
                        None,
                    )
                });
            }
            Some((
                FlagKind::ChannelPadding,
                format!(
                    "{c} channels: padded to {p} by the hardware ({zeros:.0}% of executed MACs are zeros)"
                ),
                Some("pad-channels"),
            ))
        }
        LayerKind::Concat { misaligned } if l.cycles > 0 => {
            let why = if misaligned.is_empty() {
                String::new()
            } else {
                format!(
                    " (channel offsets {:?} not multiples of {})",
                    misaligned, t.align.concat_offset
                )
            };
            Some((
                FlagKind::ConcatCopy,
                format!("concat copy{why}"),
                Some("concat-to-add"),
            ))
        }
        _ => None,
    }
}
