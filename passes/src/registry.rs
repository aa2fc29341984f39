//! The passes npuopt knows, by name.

/// A pass's public face: what `npuopt passes` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub in_default_pipeline: bool,
    /// A hardware pass: does nothing without `--target`, and joins the
    /// pipeline when a target is given.
    pub needs_target: bool,
    /// A pass for int8 deployment: joins a target's pipeline when the
    /// target's `[quantization]` scheme says it helps; by name anywhere.
    pub for_quantization: bool,
}

/// Where a pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// In the default pipeline.
    Default,
    /// A hardware pass: added to the default pipeline when a target is
    /// given, before the final dead-code sweep.
    Hardware,
    /// For int8 deployment: added to a target's pipeline when the target's
    /// `[quantization]` scheme says it helps; by name (`--passes
    /// +NAME`) anywhere.
    Quantization,
}

use crate::pass::Pass;

/// Every pass, in pipeline order, with where it runs.
///
/// With `--target`, the pipeline is the default passes with the hardware
/// passes inserted before `eliminate-dead`: the exact graph-level
/// simplifications run first (a folded BN or merged branch changes what the
/// cost model sees), then `concat-to-add` (it changes the graph's structure:
/// new convs that the next passes see), then `depthwise-to-group` (per
/// conv), then channel padding (last: channel counts are final), and the
/// dead-code sweep removes what they leave. The fixed-point loop repeats
/// the whole list, so a rewrite one pass enables is seen in the next
/// iteration.
fn registry() -> Vec<(Box<dyn Pass>, Slot)> {
    use crate::passes::*;
    vec![
        (Box::new(fold_constants::FoldConstants), Slot::Default),
        (
            Box::new(eliminate_identity::EliminateIdentity),
            Slot::Default,
        ),
        (Box::new(fold_batchnorm::FoldBatchNorm), Slot::Default),
        (
            Box::new(fold_batchnorm_across::FoldBatchNormAcross),
            Slot::Default,
        ),
        (Box::new(merge_branches::MergeBranches), Slot::Default),
        (
            Box::new(merge_linear_branches::MergeLinearBranches),
            Slot::Default,
        ),
        (
            Box::new(merge_sequential_convs::MergeSequentialConvs::default()),
            Slot::Default,
        ),
        (
            Box::new(combine_parallel_convs::CombineParallelConvs),
            Slot::Default,
        ),
        (Box::new(concat_to_add::ConcatToAdd), Slot::Hardware),
        // Padding first: a depthwise conv on 8 channels padded to 16 is one
        // depthwise-to-group can then widen to the target's group width.
        (
            Box::new(pad_channels::PadChannels::default()),
            Slot::Hardware,
        ),
        (
            Box::new(depthwise_to_group::DepthwiseToGroup),
            Slot::Hardware,
        ),
        // Last before the sweep: it rescales what the passes above left
        // (merged branches, folded BNs), and changes no shape or MAC.
        (
            Box::new(equalize_ranges::EqualizeRanges),
            Slot::Quantization,
        ),
        (Box::new(eliminate_dead::EliminateDead), Slot::Default),
    ]
}

/// Every pass's public face, in default-pipeline order.
pub fn all_passes() -> Vec<PassInfo> {
    registry()
        .into_iter()
        .map(|(p, slot)| PassInfo {
            name: p.name(),
            description: p.description(),
            in_default_pipeline: slot == Slot::Default,
            needs_target: slot == Slot::Hardware,
            for_quantization: slot == Slot::Quantization,
        })
        .collect()
}

pub fn pass_by_name(name: &str) -> Option<Box<dyn Pass>> {
    registry()
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.name() == name)
}

/// The hardware passes, in pipeline order.
pub fn hardware_pass_names() -> Vec<&'static str> {
    all_passes()
        .iter()
        .filter(|p| p.needs_target)
        .map(|p| p.name)
        .collect()
}

/// The default pipeline with the hardware passes, without the
/// quantization passes: what every target's latency pipeline runs (for
/// benchmarks and tests that compare targets on one pass list).
pub fn hardware_pipeline() -> Vec<&'static str> {
    all_passes()
        .iter()
        .filter(|p| p.in_default_pipeline || p.needs_target)
        .map(|p| p.name)
        .collect()
}

pub fn known_pass_names() -> Vec<&'static str> {
    all_passes().iter().map(|p| p.name).collect()
}

/// A pass name that is not in the registry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown pass '{name}'; known passes: {}", if known.is_empty() { "none yet".to_string() } else { known.join(", ") })]
pub struct UnknownPass {
    pub name: String,
    pub known: Vec<&'static str>,
}

/// Resolves `--passes` (a comma-separated list, or `none`) minus `--skip`.
/// `None` for `passes` means the default pipeline.
pub fn resolve_pass_list(
    passes: Option<&str>,
    skip: Option<&str>,
) -> Result<Vec<&'static str>, UnknownPass> {
    resolve_pass_list_for(passes, skip, None)
}

/// [`resolve_pass_list`] for a run with or without a target. With one, the
/// default pipeline includes the hardware passes, and the quantization
/// passes when the target's `[quantization]` scheme says they help
/// ([`npuopt_targets::schema::Quantization::equalization_helps`]), in
/// registry order.
///
/// `passes` is `none`, a list of names run in that order, or a list of
/// `+NAME` entries: the default pipeline plus those passes, each at its
/// place in registry order (`--passes +equalize-ranges`).
pub fn resolve_pass_list_for(
    passes: Option<&str>,
    skip: Option<&str>,
    target: Option<&npuopt_targets::Target>,
) -> Result<Vec<&'static str>, UnknownPass> {
    let known = all_passes();
    let lookup = |name: &str| -> Result<&'static str, UnknownPass> {
        known
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.name)
            .ok_or_else(|| UnknownPass {
                name: name.to_string(),
                known: known_pass_names(),
            })
    };
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let quantization = target
        .and_then(|t| t.quantization.as_ref())
        .is_some_and(|q| q.equalization_helps());
    let in_default = |p: &PassInfo| {
        p.in_default_pipeline
            || (target.is_some() && p.needs_target)
            || (quantization && p.for_quantization)
    };
    let mut list: Vec<&'static str> = match passes {
        None => known
            .iter()
            .filter(|p| in_default(p))
            .map(|p| p.name)
            .collect(),
        Some(s) if s.trim() == "none" => Vec::new(),
        Some(s) => {
            let names = split(s);
            let added: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix('+')).collect();
            if added.is_empty() {
                names.iter().map(|n| lookup(n)).collect::<Result<_, _>>()?
            } else {
                if let Some(plain) = names.iter().find(|n| !n.starts_with('+')) {
                    return Err(UnknownPass {
                        name: format!("{plain} (mixed with +NAME entries: use either a list or +NAME additions)"),
                        known: known_pass_names(),
                    });
                }
                let added = added
                    .into_iter()
                    .map(lookup)
                    .collect::<Result<Vec<_>, _>>()?;
                known
                    .iter()
                    .filter(|p| in_default(p) || added.contains(&p.name))
                    .map(|p| p.name)
                    .collect()
            }
        }
    };
    if let Some(skip) = skip {
        for name in split(skip) {
            let name = lookup(&name)?;
            list.retain(|p| *p != name);
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_runs_nothing() {
        assert_eq!(resolve_pass_list(Some("none"), None), Ok(vec![]));
    }

    #[test]
    fn hardware_passes_join_the_default_pipeline_with_a_target() {
        let plain = resolve_pass_list(None, None).unwrap();
        let t = npuopt_targets::Target::builtin("ethos-u55-256").unwrap();
        let with = resolve_pass_list_for(None, None, Some(&t)).unwrap();
        for hw in hardware_pass_names() {
            assert!(!plain.contains(&hw), "{hw}");
            assert!(with.contains(&hw), "{hw}");
        }
        assert_eq!(with.last(), Some(&"eliminate-dead"));
    }

    #[test]
    fn equalization_joins_targets_with_per_tensor_conv_weights_only() {
        let with = |name: &str| {
            let t = npuopt_targets::Target::builtin(name).unwrap();
            resolve_pass_list_for(None, None, Some(&t))
                .unwrap()
                .contains(&"equalize-ranges")
        };
        assert!(with("hexagon-htp"));
        assert!(with("cpu-generic"));
        assert!(!with("ethos-u55-256"));
        assert!(!with("edgetpu"));
        assert!(!with("axera-m55h"));
        // A target file that does not state its int8 scheme: nothing joins.
        let mut t = npuopt_targets::Target::builtin("cpu-generic").unwrap();
        t.quantization = None;
        let list = resolve_pass_list_for(None, None, Some(&t)).unwrap();
        assert!(!list.contains(&"equalize-ranges"));
    }

    #[test]
    fn plus_adds_to_the_default_pipeline_in_registry_order() {
        let plain = resolve_pass_list(None, None).unwrap();
        let plus = resolve_pass_list(Some("+equalize-ranges"), None).unwrap();
        assert!(!plain.contains(&"equalize-ranges"));
        assert_eq!(plus.len(), plain.len() + 1);
        assert_eq!(plus[plus.len() - 2], "equalize-ranges");
        assert_eq!(plus.last(), Some(&"eliminate-dead"));
        assert!(resolve_pass_list(Some("+equalize-ranges,fold-batchnorm"), None).is_err());
        assert!(resolve_pass_list(Some("+no-such-pass"), None).is_err());
    }

    #[test]
    fn unknown_names_are_rejected_with_the_known_list() {
        let err = resolve_pass_list(Some("fold-everything"), None).unwrap_err();
        assert_eq!(err.name, "fold-everything");
        assert!(err.to_string().contains("known passes"), "{err}");
    }
}
