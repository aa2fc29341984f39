//! The rewrite passes, one per file. Each file opens with Before / After /
//! preconditions / formula.

pub mod combine_parallel_convs;
pub mod concat_to_add;
pub mod depthwise_to_group;
pub mod eliminate_dead;
pub mod eliminate_identity;
pub mod equalize_ranges;
pub mod fold_batchnorm;
pub mod fold_batchnorm_across;
pub mod fold_constants;
pub mod merge_branches;
pub mod merge_linear_branches;
pub mod merge_sequential_convs;
pub mod pad_channels;
