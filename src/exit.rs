//! The command line's exit codes. They are a stable contract: scripts
//! branch on them.

/// Success.
pub const OK: i32 = 0;
/// Bad input (unreadable or invalid model, bad option value) or an internal error.
pub const ERROR: i32 = 1;
/// Usage error: unknown command, flag or pass name.
pub const USAGE: i32 = 2;
/// Verification failed: the optimized model does not match the input.
pub const MISMATCH: i32 = 3;
