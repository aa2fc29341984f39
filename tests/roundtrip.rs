//! Import → export with no passes is lossless: byte for byte for models as
//! PyTorch's exporters write them, field for field for everything else.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use npuopt::ir::export::{ExternalData, WriteOptions};
use npuopt::ir::import;
use npuopt::ir::proto::ModelProto;
use prost::Message;

fn real_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/real exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    files.sort();
    files
}

#[test]
fn there_are_real_fixtures_of_both_exporters() {
    let files = real_fixtures();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("_ts.onnx")), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("_dynamo.onnx")),
        "{names:?}"
    );
    assert!(files.len() >= 16, "{names:?}");
}

#[test]
fn exporter_made_models_round_trip_byte_for_byte() {
    for path in real_fixtures() {
        let original = std::fs::read(&path).unwrap();
        let model = import::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        model.graph.validate().unwrap();
        let bytes = model.to_bytes().unwrap();
        assert!(
            bytes == original,
            "{} changed on round trip",
            path.display()
        );
    }
}

#[test]
fn write_is_byte_identical_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    for path in real_fixtures() {
        let original = std::fs::read(&path).unwrap();
        let model = import::load(&path).unwrap();
        let out = dir.path().join(path.file_name().unwrap());
        let written = model.write(&out, &WriteOptions::default()).unwrap();
        assert_eq!(written, original.len() as u64);
        assert!(
            std::fs::read(&out).unwrap() == original,
            "{}",
            path.display()
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".npuopt-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn tensor_bytes_are_shared_with_the_input_buffer() {
    let path = real_fixtures().into_iter().next().unwrap();
    let buffer = Bytes::from(std::fs::read(&path).unwrap());
    let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
    let model = import::from_bytes(buffer.clone(), None).unwrap();
    let g = &model.graph;
    let mut checked = 0;
    for v in g.initializers() {
        let t = g.value(v).initializer().unwrap();
        if let Some(raw) = &t.proto().raw_data {
            if !raw.is_empty() {
                assert!(
                    range.contains(&(raw.as_ptr() as usize)),
                    "'{}' was copied",
                    t.name()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

#[test]
fn external_data_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for path in real_fixtures().iter().take(4) {
        let model = import::load(path).unwrap();
        let out = dir.path().join("ext.onnx");
        let opts = WriteOptions {
            external: Some(ExternalData {
                location: "ext.onnx.data".into(),
                min_bytes: 256,
            }),
            ..Default::default()
        };
        model.write(&out, &opts).unwrap();
        let raw = ModelProto::decode(Bytes::from(std::fs::read(&out).unwrap())).unwrap();
        let external = raw
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .filter(|t| npuopt::ir::external::is_external(t))
            .count();
        assert!(
            external > 0,
            "{}: nothing was written externally",
            path.display()
        );
        assert!(std::fs::metadata(&out).unwrap().len() < std::fs::metadata(path).unwrap().len());
        // Reading it back gives the original model, every field.
        let back = import::load(&out).unwrap();
        let original = ModelProto::decode(Bytes::from(std::fs::read(path).unwrap())).unwrap();
        assert!(back.to_proto().unwrap() == original, "{}", path.display());
    }
}

#[test]
fn external_data_location_must_stay_in_the_output_folder() {
    let path = &real_fixtures()[0];
    let model = import::load(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = WriteOptions {
        external: Some(ExternalData {
            location: "../escape.data".into(),
            min_bytes: 0,
        }),
        ..Default::default()
    };
    let err = model.write(&dir.path().join("m.onnx"), &opts).unwrap_err();
    assert!(
        err.to_string().contains("inside the output folder"),
        "{err}"
    );
    assert!(!dir.path().join("m.onnx").exists());
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let path = &real_fixtures()[0];
    let model = import::load(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The target is a directory: the rename must fail, and the temporary
    // file must be cleaned up.
    let target = dir.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    assert!(model.write(&target, &WriteOptions::default()).is_err());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["taken".to_string()]);
}

#[test]
fn reencoding_is_a_fixed_point() {
    for path in real_fixtures() {
        let a = import::load(&path).unwrap().to_bytes().unwrap();
        let b = import::from_bytes(Bytes::from(a.clone()), None)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert!(a == b, "{}", path.display());
    }
}

#[cfg(unix)]
#[test]
fn an_overwritten_file_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let model = import::load(&real_fixtures()[0]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    model.write(&out, &WriteOptions::default()).unwrap();
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // A new file gets what a plain create gives, 0666 less the umask (read
    // from /proc), not a temporary file's 0600.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        .expect("Linux reports the umask");
    let fresh = dir.path().join("fresh.onnx");
    model.write(&fresh, &WriteOptions::default()).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666 & !umask);
}

/// Tensors of 64 KiB and more are copied from the mapped input file to
/// the output by the kernel, between buffered writes of everything else:
/// the output must still be the input, byte for byte, whatever the
/// tensors' sizes and offsets.
#[test]
fn large_tensors_copied_from_the_input_file_land_in_place() {
    use npuopt::ir::proto::{GraphProto, NodeProto, OperatorSetIdProto, TensorProto};
    let mut inits = Vec::new();
    let mut nodes = Vec::new();
    let mut prev = "x".to_string();
    for (i, len) in [70_001usize, 3, 300_017, 65_536, 1 << 20, 65_535]
        .into_iter()
        .enumerate()
    {
        let w = format!("w{i}");
        inits.push(TensorProto {
            name: Some(w.clone()),
            dims: vec![len as i64],
            data_type: Some(2), // uint8
            raw_data: Some(Bytes::from(
                (0..len).map(|j| (j * 31 + i) as u8).collect::<Vec<u8>>(),
            )),
            ..Default::default()
        });
        let out = format!("y{i}");
        nodes.push(NodeProto {
            name: Some(format!("add{i}")),
            op_type: Some("Add".into()),
            input: vec![prev.clone(), w],
            output: vec![out.clone()],
            ..Default::default()
        });
        prev = out;
    }
    let info = |n: &str| npuopt::ir::proto::ValueInfoProto {
        name: Some(n.into()),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("big".into()),
            node: nodes,
            initializer: inits,
            input: vec![info("x")],
            output: vec![info(&prev)],
            ..Default::default()
        }),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.onnx");
    let original = model.encode_to_vec();
    std::fs::write(&input, &original).unwrap();
    let m = import::load(&input).unwrap();
    for (k, skip_sync) in [false, true].into_iter().enumerate() {
        let out = dir.path().join(format!("out{k}.onnx"));
        let opts = WriteOptions {
            skip_sync,
            ..Default::default()
        };
        let written = m.write(&out, &opts).unwrap();
        assert_eq!(written, original.len() as u64);
        assert!(std::fs::read(&out).unwrap() == original);
    }
}
