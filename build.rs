//! Link flags for npuopt's own executables.
//!
//! Relative relocations are packed (`DT_RELR`, glibc 2.36+): a PIE of this
//! size has ~55 000 of them, 1.3 MB of `.rela.dyn` that the dynamic loader
//! reads on every start — pages that count toward a run's peak memory
//! (measured: 1.3 MiB of a 16 MiB run on an 8 MiB model). Packed, they take
//! a few kB. Needs GNU ld 2.38+ or lld 15+ (older GNU ld warns and ignores
//! the option) and glibc 2.36+ to run the result (the executable requires
//! `GLIBC_ABI_DT_RELR`, so an older glibc refuses it by name at start-up).
//! Only the executables: the Python extension module is not affected.
fn main() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
