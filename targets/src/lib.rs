//! npuopt's hardware knowledge: NPU target descriptions and the cost model.
//!
//! * [`Target`]: a TOML description (see `targets/builtin/*.toml`), parsed
//!   strictly: an unknown or mistyped field is an error naming the file and
//!   the field. Built-ins: [`builtin_names`].
//! * [`cost::estimate`]: per-layer cycles, utilisation and bound of a graph
//!   on a target, whole-model totals, and the biggest losses flagged with
//!   the rewrite that would address them. Every figure is an estimate.
//!
//! The cost model reads the graph; it never changes it.
//!
//! ```
//! use npuopt_targets::{cost, Target};
//! # let bytes = npuopt_ir::testing::tiny_model_bytes();
//! # let model = npuopt_ir::import::from_bytes(bytes.into(), None).unwrap();
//! let target = Target::builtin("ethos-u55-256")?;
//! let est = cost::estimate(&model.graph, &target);
//! assert_eq!(est.layers.len(), model.graph.node_count());
//! # Ok::<(), npuopt_targets::TargetError>(())
//! ```

pub mod cost;
pub mod error;
pub mod schema;

pub use cost::{estimate, Bound, Estimate, Flag, FlagKind, LayerCost};
pub use error::TargetError;
pub use schema::{builtin_names, builtin_text, GroupMode, Target};
