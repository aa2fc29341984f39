//! Generates the prost types for the ONNX schema.
//!
//! `bytes` fields become `bytes::Bytes` so tensor payloads decoded from a
//! shared buffer are slices of it, never copies.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("src/proto");
    std::fs::create_dir_all(&out)?;
    prost_build::Config::new()
        .bytes(["."])
        .out_dir(&out)
        .compile_protos(&[root.join("proto/onnx.proto")], &[root.join("proto")])?;
    println!("wrote {}", out.join("onnx.rs").display());
    Ok(())
}
