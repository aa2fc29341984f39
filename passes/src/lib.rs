//! npuopt's rewrite passes and the manager that runs them.
//!
//! A pass has a stable kebab-case name and a one-line description, rewrites
//! the graph, and records one [`Change`] per rewrite for the report.

pub mod cancel;
pub mod change;
pub mod conv_algebra;
pub mod fold_gate;
pub mod footprint;
pub mod gate;
pub mod linear_layer;
pub mod manager;
pub mod pass;
pub mod passes;
pub mod quant_stats;
pub mod registry;
pub mod rewrite;

pub use cancel::Cancel;
pub use change::Change;
pub use gate::{Decision, GateOptions, Intent, Outcome, Proposal};
pub use manager::{
    run_pipeline, trace_memory, PassSummary, PipelineError, PipelineOptions, PipelineReport,
};
pub use pass::{Pass, PassContext, PassError};
pub use registry::{
    hardware_pass_names, known_pass_names, resolve_pass_list, resolve_pass_list_for, PassInfo,
    UnknownPass,
};
