//! The `npuopt` command. All logic lives in the library; this file maps
//! outcomes to the documented exit codes.

fn main() {
    // Rust ignores SIGPIPE, so a write to a closed pipe (`npuopt inspect m.onnx
    // | head`) would panic in println!. With the default action the process
    // ends quietly on it, like every other Unix filter.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL
    // is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(npuopt::cli::main());
}
