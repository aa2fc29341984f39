//! Fuzzes the ONNX importer: any bytes must either be refused with an
//! `IrError` or import into a graph that validates, dumps, exports, and
//! whose export is a fixed point (export → import → export is identical).
#![no_main]

use libfuzzer_sys::fuzz_target;

use npuopt_ir::{dump::dump, import::from_bytes};

fuzz_target!(|data: &[u8]| {
    let Ok(model) = from_bytes(bytes::Bytes::copy_from_slice(data), None) else {
        return;
    };
    model.graph.validate().expect("an imported graph validates");
    dump(&model.graph).expect("an imported graph dumps");
    let once = model.to_bytes().expect("an imported model exports");
    let again =
        from_bytes(bytes::Bytes::from(once.clone()), None).expect("an exported model re-imports");
    again
        .graph
        .validate()
        .expect("a re-imported graph validates");
    let twice = again.to_bytes().expect("a re-imported model exports");
    assert!(once == twice, "export is not a fixed point");
});
