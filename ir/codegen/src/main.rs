//! Generates the prost types for the ONNX schema.
//!
//! `bytes` fields become `bytes::Bytes` so tensor payloads decoded from a
//! shared buffer are slices of it, never copies.
//!
//! AttributeProto's rarely-set message fields are boxed: inline, a tensor,
//! a sparse tensor, a graph and a type made every attribute 1672 bytes,
//! and a model has thousands of attributes (MobileOne-S0: the decoded
//! protobuf was 4.2 MiB over the file).

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("src/proto");
    std::fs::create_dir_all(&out)?;
    prost_build::Config::new()
        .bytes(["."])
        .boxed(".onnx.AttributeProto.t")
        .boxed(".onnx.AttributeProto.g")
        .boxed(".onnx.AttributeProto.sparse_tensor")
        .boxed(".onnx.AttributeProto.tp")
        .out_dir(&out)
        .compile_protos(&[root.join("proto/onnx.proto")], &[root.join("proto")])?;
    println!("wrote {}", out.join("onnx.rs").display());
    Ok(())
}
