//! Tensors whose bytes live in a separate file (ONNX "external data").
//!
//! Paths are relative to the model's folder and must stay inside it: an
//! absolute path, a `..` component or a link that leads out is refused, so a
//! model cannot make npuopt read arbitrary files.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use crate::error::{IrError, Result};
use crate::proto::tensor_proto::DataLocation;
use crate::proto::TensorProto;

fn entry<'a>(t: &'a TensorProto, key: &str) -> Option<&'a str> {
    t.external_data
        .iter()
        .find(|e| e.key.as_deref() == Some(key))
        .and_then(|e| e.value.as_deref())
}

fn err(t: &TensorProto, message: String) -> IrError {
    IrError::ExternalData {
        tensor: t.name.clone().unwrap_or_default(),
        message,
    }
}

/// Resolves `location` inside `base`, refusing escapes.
pub fn resolve(base: &Path, location: &str) -> std::result::Result<PathBuf, String> {
    let rel = Path::new(location);
    if location.is_empty() {
        return Err("empty location".into());
    }
    if rel.is_absolute() || location.starts_with('/') || location.starts_with('\\') {
        return Err(format!("location '{location}' is an absolute path; only paths inside the model's folder are allowed"));
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(format!(
                "location '{location}' leaves the model's folder; only paths inside it are allowed"
            ))
            }
        }
    }
    let path = base.join(rel);
    let canon_base = base
        .canonicalize()
        .map_err(|e| format!("model folder '{}': {e}", base.display()))?;
    let canon = path
        .canonicalize()
        .map_err(|e| format!("file '{}' cannot be opened: {e}", path.display()))?;
    if !canon.starts_with(&canon_base) {
        return Err(format!(
            "location '{location}' resolves outside the model's folder"
        ));
    }
    Ok(canon)
}

/// The side files of one model, each read (mapped) once however many
/// tensors it holds: a tensor's bytes are a slice of its file's buffer.
#[derive(Default)]
pub struct Files {
    open: HashMap<PathBuf, Bytes>,
}

impl Files {
    /// The size of every side file read, each counted once.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.open.values().map(|b| b.len() as u64).sum()
    }

    fn get(&mut self, path: &Path) -> std::io::Result<Bytes> {
        if let Some(b) = self.open.get(path) {
            return Ok(b.clone());
        }
        let b = crate::mapped::read(path)?;
        self.open.insert(path.to_path_buf(), b.clone());
        Ok(b)
    }
}

/// Reads an external tensor's bytes into `raw_data` and clears the external
/// fields: from here on the tensor is an ordinary in-memory tensor, its
/// payload a slice of the side file (mapped once, through `files`).
pub fn load(t: &mut TensorProto, base: Option<&Path>, files: &mut Files) -> Result<()> {
    let location = entry(t, "location")
        .ok_or_else(|| err(t, "no 'location' entry".into()))?
        .to_string();
    let Some(base) = base else {
        return Err(err(
            t,
            format!("stored in '{location}', but the model was not loaded from a folder"),
        ));
    };
    let parse = |key: &str| -> Result<Option<u64>> {
        match entry(t, key) {
            None => Ok(None),
            Some(s) => s
                .parse::<u64>()
                .map(Some)
                .map_err(|_| err(t, format!("'{key}' is not a number: '{s}'"))),
        }
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    let path = resolve(base, &location).map_err(|m| err(t, m))?;
    let data = files
        .get(&path)
        .map_err(|e| err(t, format!("'{location}': {e}")))?;
    let size = data.len() as u64;
    let length = length.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(err(
            t,
            format!(
                "'{location}' is too short: {size} bytes, but the tensor needs bytes {offset}..{}",
                offset.saturating_add(length)
            ),
        ));
    }
    t.raw_data = Some(data.slice(offset as usize..(offset + length) as usize));
    t.external_data.clear();
    t.data_location = None;
    Ok(())
}

pub fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32)
}

/// Checks that a new side file `location` stays inside `dir`.
pub fn resolve_new(dir: &Path, location: &str) -> std::result::Result<PathBuf, String> {
    let rel = Path::new(location);
    if location.is_empty()
        || rel.is_absolute()
        || rel.components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "external data location '{location}' must be a file name inside the output folder"
        ));
    }
    Ok(dir.join(rel))
}
