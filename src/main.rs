//! The `npuopt` command. All logic lives in the library; this file maps
//! outcomes to the documented exit codes.

fn main() {
    std::process::exit(npuopt::cli::main());
}
