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
}

/// Where a pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// In the default pipeline.
    Default,
    /// A hardware pass: added to the default pipeline when a target is
    /// given, before the final dead-code sweep.
    Hardware,
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
        (Box::new(merge_branches::MergeBranches), Slot::Default),
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
    resolve_pass_list_for(passes, skip, false)
}

/// [`resolve_pass_list`] for a run with or without a target: with one, the
/// default pipeline includes the hardware passes (in registry order).
pub fn resolve_pass_list_for(
    passes: Option<&str>,
    skip: Option<&str>,
    with_target: bool,
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
    let mut list: Vec<&'static str> = match passes {
        None => known
            .iter()
            .filter(|p| p.in_default_pipeline || (with_target && p.needs_target))
            .map(|p| p.name)
            .collect(),
        Some(s) if s.trim() == "none" => Vec::new(),
        Some(s) => split(s)
            .iter()
            .map(|n| lookup(n))
            .collect::<Result<_, _>>()?,
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
        let with = resolve_pass_list_for(None, None, true).unwrap();
        for hw in hardware_pass_names() {
            assert!(!plain.contains(&hw), "{hw}");
            assert!(with.contains(&hw), "{hw}");
        }
        assert_eq!(with.last(), Some(&"eliminate-dead"));
    }

    #[test]
    fn unknown_names_are_rejected_with_the_known_list() {
        let err = resolve_pass_list(Some("fold-everything"), None).unwrap_err();
        assert_eq!(err.name, "fold-everything");
        assert!(err.to_string().contains("known passes"), "{err}");
    }
}
