//! Reading criterion's saved results: `<criterion home>/<bench>/<baseline>/estimates.json`,
//! next to the `benchmark.json` that names the bench.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

/// One bench's result from one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Median time per iteration, in nanoseconds (criterion's `median.point_estimate`).
    pub median_ns: f64,
}

/// Every bench result saved under one baseline name, by full bench id
/// (`group/function` or `group/function/parameter`).
#[derive(Debug, Clone, Default)]
pub struct Estimates {
    by_id: BTreeMap<String, Estimate>,
}

impl Estimates {
    /// Reads every result saved under `baseline` in `criterion_home` that was written at or
    /// after `since` (older files belong to an earlier run and are left out).
    pub fn load(criterion_home: &Path, baseline: &str, since: SystemTime) -> io::Result<Self> {
        let mut estimates = Self::default();
        estimates.walk(criterion_home, baseline, since)?;
        Ok(estimates)
    }

    fn walk(&mut self, dir: &Path, baseline: &str, since: SystemTime) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let path = entry.path();
            if entry.file_name() == baseline {
                let estimates_file = path.join("estimates.json");
                let benchmark_file = path.join("benchmark.json");
                if !estimates_file.exists() || !benchmark_file.exists() {
                    continue;
                }
                if fs::metadata(&estimates_file)?.modified()? < since {
                    continue;
                }
                let id = read_json(&benchmark_file)?
                    .get("full_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(&benchmark_file, "no full_id"))?
                    .to_owned();
                let json = read_json(&estimates_file)?;
                let median = &json["median"];
                let number = |value: &Value| {
                    value
                        .as_f64()
                        .ok_or_else(|| bad(&estimates_file, "no median estimate"))
                };
                let estimate = Estimate {
                    median_ns: number(&median["point_estimate"])?,
                };
                self.by_id.insert(id, estimate);
            } else {
                self.walk(&path, baseline, since)?;
            }
        }
        Ok(())
    }

    /// The result of the bench with this full id, if it ran.
    pub fn get(&self, id: &str) -> Option<Estimate> {
        self.by_id.get(id).copied()
    }
}

fn read_json(path: &Path) -> io::Result<Value> {
    serde_json::from_slice(&fs::read(path)?).map_err(|e| bad(path, &e.to_string()))
}

fn bad(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}
