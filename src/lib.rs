//! npuopt: an ONNX graph optimizer for NPUs.
//!
//! The library behind the `npuopt` command: load a model, optimize it for a
//! target, verify the result against the input with tract, inspect it.

pub mod cli;
pub mod exit;
pub mod inspect;
pub mod optimize;
pub mod report;
pub mod verify;

pub use npuopt_ir as ir;
