//! The text dump — the format of every snapshot — on every synthetic
//! fixture: deterministic, topological, values renumbered, initializers
//! summarised.

mod common;

use common::*;

#[test]
fn dump_of_every_synthetic_fixture() {
    for (name, proto) in npuopt_fixtures::synthetic::all() {
        let model = import_proto(&proto);
        let text = npuopt::ir::dump::dump(&model.graph).unwrap();
        // Same model, same text: import twice, dump twice.
        let again = npuopt::ir::dump::dump(&import_proto(&proto).graph).unwrap();
        assert_eq!(text, again, "{name}: dump is not deterministic");
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn lossless_features_survive_a_round_trip_field_for_field() {
    use prost::Message;
    let proto = fixture("lossless_features");
    let model = import_proto(&proto);
    let back = model.to_proto().unwrap();
    assert!(back == proto, "decoded model differs");
    assert_eq!(model.to_bytes().unwrap(), proto.encode_to_vec());
}
