//! Turning the verification flags into [`VerifyOptions`].

use super::args::CheckArgs;
use crate::verify::VerifyOptions;

/// Parses `--input-shape NAME=D,D,…` flags.
pub fn parse_input_shapes(specs: &[String]) -> anyhow::Result<Vec<(String, Vec<usize>)>> {
    let mut input_shapes = Vec::new();
    for spec in specs {
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
    Ok(input_shapes)
}

/// The same, as the IR's `i64` dims (for pinning).
pub fn parse_input_shapes_i64(specs: &[String]) -> anyhow::Result<Vec<(String, Vec<i64>)>> {
    Ok(parse_input_shapes(specs)?
        .into_iter()
        .map(|(n, d)| (n, d.into_iter().map(|x| x as i64).collect()))
        .collect())
}

impl CheckArgs {
    pub fn to_options(&self) -> anyhow::Result<VerifyOptions> {
        let input_shapes = parse_input_shapes(&self.input_shape)?;
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
            noise_factor: self.noise_factor,
            ..VerifyOptions::default()
        })
    }
}
