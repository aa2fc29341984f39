//! npuopt's rewrite passes and the manager that runs them.
//!
//! A pass has a stable kebab-case name and a one-line description, rewrites
//! the graph, and records one [`Change`] per rewrite for the report.

pub mod change;
pub mod registry;

pub use change::Change;
pub use registry::{known_pass_names, resolve_pass_list, PassInfo, UnknownPass};
