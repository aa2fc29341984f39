//! The passes npuopt knows, by name.

/// A pass's public face: what `npuopt passes` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub in_default_pipeline: bool,
}

use crate::pass::Pass;

/// Every pass, in default-pipeline order, with whether the default
/// pipeline runs it.
fn registry() -> Vec<(Box<dyn Pass>, bool)> {
    use crate::passes::*;
    vec![
        (Box::new(fold_constants::FoldConstants), true),
        (Box::new(eliminate_identity::EliminateIdentity), true),
        (Box::new(fold_batchnorm::FoldBatchNorm), true),
        (Box::new(merge_branches::MergeBranches), true),
        (
            Box::new(merge_sequential_convs::MergeSequentialConvs::default()),
            true,
        ),
        (Box::new(combine_parallel_convs::CombineParallelConvs), true),
        (Box::new(eliminate_dead::EliminateDead), true),
    ]
}

/// Every pass's public face, in default-pipeline order.
pub fn all_passes() -> Vec<PassInfo> {
    registry()
        .into_iter()
        .map(|(p, default)| PassInfo {
            name: p.name(),
            description: p.description(),
            in_default_pipeline: default,
        })
        .collect()
}

pub fn pass_by_name(name: &str) -> Option<Box<dyn Pass>> {
    registry()
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.name() == name)
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
            .filter(|p| p.in_default_pipeline)
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
    fn unknown_names_are_rejected_with_the_known_list() {
        let err = resolve_pass_list(Some("fold-everything"), None).unwrap_err();
        assert_eq!(err.name, "fold-everything");
        assert!(err.to_string().contains("known passes"), "{err}");
    }
}
