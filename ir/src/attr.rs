//! Reading and writing `AttributeProto`s with their types checked.

use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, TensorProto};

/// A node's attributes, read by name with type checks.
pub struct Attrs<'a>(pub &'a [AttributeProto]);

impl<'a> Attrs<'a> {
    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.iter().find(|a| a.name.as_deref() == Some(name))
    }

    fn typed(&self, name: &str, want: AttributeType) -> Result<Option<&'a AttributeProto>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        if a.ref_attr_name.is_some() {
            return Err(format!("attribute '{name}' refers to a function attribute"));
        }
        let ty = a.r#type.and_then(|t| AttributeType::try_from(t).ok());
        // IR < 3 models may omit `type`; accept the field that is set.
        let ok = match ty {
            Some(t) => t == want,
            None => match want {
                AttributeType::Int => a.i.is_some(),
                AttributeType::Float => a.f.is_some(),
                AttributeType::String => a.s.is_some(),
                AttributeType::Tensor => a.t.is_some(),
                AttributeType::Ints => true,
                AttributeType::Floats => true,
                _ => false,
            },
        };
        if !ok {
            return Err(format!(
                "attribute '{name}' must be {}, got {}",
                want.as_str_name(),
                ty.map(|t| t.as_str_name()).unwrap_or("an untyped value")
            ));
        }
        Ok(Some(a))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, String> {
        Ok(self
            .typed(name, AttributeType::Int)?
            .map(|a| a.i.unwrap_or(0)))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, String> {
        Ok(self
            .typed(name, AttributeType::Float)?
            .map(|a| a.f.unwrap_or(0.0)))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, String> {
        Ok(self
            .typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.typed(name, AttributeType::String)? {
            None => Ok(None),
            Some(a) => {
                let s = a.s.as_deref().unwrap_or_default();
                String::from_utf8(s.to_vec())
                    .map(Some)
                    .map_err(|_| format!("attribute '{name}' is not UTF-8"))
            }
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, String> {
        Ok(self
            .typed(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_deref()))
    }

    /// Names not in `known`: a typed op with such attributes is left opaque.
    pub fn unknown(&self, known: &[&str]) -> Option<String> {
        self.0
            .iter()
            .map(|a| a.name.as_deref().unwrap_or(""))
            .find(|n| !known.contains(n))
            .map(str::to_string)
    }
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
        ..Default::default()
    }
}

pub fn tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(Box::new(t)),
        ..Default::default()
    }
}
