//! The rewrite passes, one per file. Each file opens with Before / After /
//! preconditions / formula.

pub mod fold_batchnorm;
