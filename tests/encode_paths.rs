//! Import decodes the graph field by field and export encodes it straight
//! from the IR (ir/src/decode.rs, ir/src/encode.rs), not through prost's
//! `ModelProto`. Both must agree with prost exactly: the same model from
//! the same bytes, the same bytes from the same model — for every
//! committed fixture, after the default pipeline too, and for damaged
//! inputs (where both must refuse, or both give the same model).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use npuopt::ir::import;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::Model;
use prost::Message;

fn fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "onnx") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        &mut files,
    );
    files.sort();
    files
}

/// The model through prost's own decode.
fn via_prost(bytes: &Bytes, dir: Option<&Path>) -> Result<Model, String> {
    let proto = import::decode(bytes.clone()).map_err(|e| e.to_string())?;
    import::from_proto(proto, dir).map_err(|e| e.to_string())
}

fn encoded_by_prost(m: &Model) -> Vec<u8> {
    m.to_proto().unwrap().encode_to_vec()
}

#[test]
fn both_decoders_and_both_encoders_agree_on_every_fixture() {
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let mut checked = 0;
    for path in fixtures() {
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        let dir = path.parent();
        let streamed = import::from_bytes(bytes.clone(), dir);
        let prost = via_prost(&bytes, dir);
        let (mut a, b) = match (streamed, prost) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b, "{}", path.display());
                continue;
            }
            (a, b) => panic!(
                "{}: streamed {:?}, prost {:?}",
                path.display(),
                a.err(),
                b.err()
            ),
        };
        let out = a.to_bytes().unwrap();
        assert!(out == encoded_by_prost(&a), "{}", path.display());
        assert!(out == b.to_bytes().unwrap(), "{}", path.display());
        assert!(out == encoded_by_prost(&b), "{}", path.display());
        // Rewritten graphs hold nodes built by passes (new names, fresh
        // attributes, Identity nodes keeping an output's name).
        if npuopt_passes::run_pipeline(&mut a, &passes, Default::default()).is_ok() {
            assert!(
                a.to_bytes().unwrap() == encoded_by_prost(&a),
                "{} after the pipeline",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
}

/// Deterministic byte damage: flipped bytes, truncation, a field repeated.
#[test]
fn damaged_inputs_are_refused_or_read_alike() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real/mobileone_ts.onnx");
    let original = std::fs::read(&path).unwrap();
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut refused) = (0, 0);
    for round in 0..300 {
        let mut b = original.clone();
        match round % 3 {
            0 => {
                for _ in 0..1 + next() % 4 {
                    let i = (next() % b.len() as u64) as usize;
                    b[i] ^= 1 << (next() % 8);
                }
            }
            1 => {
                // Damage in the graph's structure, not only in weights:
                // the first 64 KiB hold the nodes of this export.
                let i = (next() % b.len().min(1 << 16) as u64) as usize;
                b[i] = next() as u8;
            }
            _ => b.truncate((next() % b.len() as u64) as usize),
        }
        let bytes = Bytes::from(b);
        match (
            import::from_bytes(bytes.clone(), None),
            via_prost(&bytes, None),
        ) {
            (Ok(a), Ok(p)) => {
                assert!(
                    a.to_bytes().unwrap() == p.to_bytes().unwrap(),
                    "round {round}"
                );
                assert!(
                    a.to_bytes().unwrap() == encoded_by_prost(&a),
                    "round {round}"
                );
                ok += 1;
            }
            (Err(_), Err(_)) => refused += 1,
            (a, p) => panic!("round {round}: streamed {:?}, prost {:?}", a.err(), p.err()),
        }
    }
    assert!(ok > 10 && refused > 10, "{ok} read, {refused} refused");
}

/// Protobuf's merge rules, which a field-by-field decoder must keep: a
/// repeated singular message merges, a repeated singular scalar keeps the
/// last value, repeated fields append even when interleaved, unknown
/// fields are skipped.
#[test]
fn protobuf_merge_rules_hold() {
    use prost::encoding::{encode_key, encode_varint, WireType};
    fn field(tag: u32, payload: &[u8], out: &mut Vec<u8>) {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    // Node: input x, output y, name "a", input w, name "relu", op Relu,
    // an unknown varint field 99, output "" (absent).
    let mut node = Vec::new();
    field(1, b"x", &mut node);
    field(2, b"y", &mut node);
    field(3, b"a", &mut node);
    field(4, b"Relu", &mut node);
    field(3, b"relu", &mut node);
    encode_key(99, WireType::Varint, &mut node);
    encode_varint(7, &mut node);
    let mut graph1 = Vec::new();
    field(1, &node, &mut graph1);
    field(2, b"first", &mut graph1);
    let mut input = Vec::new();
    field(1, b"x", &mut input);
    field(11, &input, &mut graph1);
    // The graph field again: its node list appends, its name replaces.
    let mut graph2 = Vec::new();
    field(2, b"second", &mut graph2);
    let mut out = Vec::new();
    field(1, b"y", &mut out);
    field(12, &out, &mut graph2);
    let mut model = Vec::new();
    encode_key(1, WireType::Varint, &mut model);
    encode_varint(8, &mut model);
    field(7, &graph1, &mut model);
    let mut opset = Vec::new();
    encode_key(2, WireType::Varint, &mut opset);
    encode_varint(13, &mut opset);
    field(8, &opset, &mut model);
    field(7, &graph2, &mut model);
    let bytes = Bytes::from(model);
    let a = import::from_bytes(bytes.clone(), None).unwrap();
    let b = via_prost(&bytes, None).unwrap();
    assert_eq!(a.graph.name(), "second");
    let n = a.graph.node(a.graph.node_ids().next().unwrap());
    assert_eq!((n.name(), n.op_type()), ("relu", "Relu"));
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    assert_eq!(a.to_bytes().unwrap(), encoded_by_prost(&a));
    // A name that is not UTF-8 is refused by both.
    let mut bad = Vec::new();
    field(1, b"\xff", &mut bad);
    let mut g = Vec::new();
    field(1, &bad, &mut g);
    let mut m = Vec::new();
    field(7, &g, &mut m);
    let bytes = Bytes::from(m);
    assert!(import::from_bytes(bytes.clone(), None).is_err());
    assert!(ModelProto::decode(bytes).is_err());
}
