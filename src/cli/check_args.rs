//! Turning the verification flags into [`VerifyOptions`].

use super::args::CheckArgs;
use crate::verify::VerifyOptions;

impl CheckArgs {
    pub fn to_options(&self) -> anyhow::Result<VerifyOptions> {
        let mut input_shapes = Vec::new();
        for spec in &self.input_shape {
            let (name, dims) = spec
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--input-shape '{spec}': expected NAME=D,D,…"))?;
            let dims = dims
                .split(',')
                .map(|d| d.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| anyhow::anyhow!("--input-shape '{spec}': dims must be numbers"))?;
            input_shapes.push((name.to_string(), dims));
        }
        let input_range = match &self.input_range {
            None => None,
            Some(r) => {
                let (lo, hi) = r
                    .split_once(',')
                    .ok_or_else(|| anyhow::anyhow!("--input-range '{r}': expected LO,HI"))?;
                Some((lo.trim().parse::<f64>()?, hi.trim().parse::<f64>()?))
            }
        };
        Ok(VerifyOptions {
            seed: self.seed,
            samples: self.samples,
            input_shapes,
            input_range,
            rtol: self.rtol,
            atol: self.atol,
            ..VerifyOptions::default()
        })
    }
}
