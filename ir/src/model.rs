//! A model: the graph plus everything around it.

use crate::graph::Graph;
use crate::proto::ModelProto;

#[derive(Clone, Debug)]
pub struct Model {
    /// Model fields the IR does not model — IR version, opset imports,
    /// producer, metadata, functions, training info, configuration — kept as
    /// read. Its `graph` is `None`; the graph lives in [`Model::graph`].
    pub header: ModelProto,
    pub graph: Graph,
    /// Bytes of the side files the imported model's external tensors were
    /// read from (0: none), so sizes can be reported for the whole model,
    /// not only its `.onnx` file.
    pub external_bytes: u64,
}

impl Model {
    /// The opset version the model imports for `domain` (`""` is ai.onnx).
    pub fn opset(&self, domain: &str) -> Option<i64> {
        opset_of(&self.header, domain)
    }

    pub fn ir_version(&self) -> i64 {
        self.header.ir_version.unwrap_or(0)
    }

    /// Sets (or adds) a `metadata_props` entry on the model.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        use crate::proto::StringStringEntryProto;
        let props = &mut self.header.metadata_props;
        match props.iter_mut().find(|p| p.key.as_deref() == Some(key)) {
            Some(p) => p.value = Some(value.to_string()),
            None => props.push(StringStringEntryProto {
                key: Some(key.to_string()),
                value: Some(value.to_string()),
            }),
        }
    }
}

pub(crate) fn opset_of(m: &ModelProto, domain: &str) -> Option<i64> {
    let is_default = |d: &str| d.is_empty() || d == "ai.onnx";
    m.opset_import
        .iter()
        .find(|o| {
            let d = o.domain.as_deref().unwrap_or("");
            d == domain || (is_default(d) && is_default(domain))
        })
        .map(|o| o.version.unwrap_or(0))
}
