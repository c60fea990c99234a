//! The tables of the page, one per bench group or measurement.

use std::error::Error;

use benches::pipe_cpu::Repeat;
use benches::plan::{self, POOLS};
use benches::workers::Worker;

use crate::COMMAND;
use crate::format::{bold, plural, ratio, table, thousands, time, time_row};
use crate::measure::pipe_plan;
use crate::run::{Run, Spread};

impl Run {
    pub(super) fn get_drop_table(&self, group: &str) -> Result<String, Box<dyn Error>> {
        let mut rows = Vec::new();
        let mut per_pool: Vec<Vec<f64>> = vec![Vec::new(); POOLS.len()];
        for round in 0..self.rounds.len() {
            let mut row = vec![format!("round {}", round + 1)];
            for (i, pool) in POOLS.iter().enumerate() {
                let ns = self.ns(round, &format!("{group}/{pool}"))?;
                per_pool[i].push(ns);
                row.push(time(ns));
            }
            row.push(ratio(per_pool[0][round] / per_pool[1][round]));
            row.push(ratio(per_pool[0][round] / per_pool[2][round]));
            row.push(ratio(per_pool[3][round] / per_pool[1][round]));
            rows.push(row);
        }
        if self.rounds.len() > 1 {
            let mut row = vec!["median".to_owned()];
            for times in &per_pool {
                row.push(time(Spread::of(times.clone()).median));
            }
            row.push(bold(ratio(
                Spread::of(self.versus(group, "deadpool")?).median,
            )));
            row.push(ratio(Spread::of(self.versus(group, "bb8")?).median));
            let floor = self.per_round(|r| {
                Ok(self.ns(r, &format!("{group}/semaphore+mutex"))?
                    / self.ns(r, &format!("{group}/deadpool"))?)
            })?;
            row.push(ratio(Spread::of(floor).median));
            rows.push(row);
        }
        Ok(table(
            &[
                "",
                "pool-core",
                "deadpool",
                "bb8",
                "floor",
                "pool-core / deadpool",
                "pool-core / bb8",
                "floor / deadpool",
            ],
            rows,
        ))
    }

    pub(super) fn scaling_table(&self) -> Result<String, Box<dyn Error>> {
        let uncontended = plan::GROUP_SCALING_UNCONTENDED;
        let contended = plan::GROUP_SCALING_CONTENDED;
        let mut rows = Vec::new();
        for round in 0..self.rounds.len() {
            let n = round + 1;
            let times = |group: &str, subject: &str| self.scaling_times(round, group, subject);
            let ours = times(uncontended, "pool-core")?;
            rows.push(time_row(
                format!("uncontended, pool-core, round {n}"),
                &ours,
            ));
            let ours = times(contended, "pool-core")?;
            rows.push(time_row(format!("contended, pool-core, round {n}"), &ours));
            let floor = times(contended, "semaphore+mutex")?;
            rows.push(time_row(format!("contended, floor, round {n}"), &floor));
            let mut row = vec![format!("contended, pool-core / floor, round {n}")];
            row.extend(ours.iter().zip(&floor).map(|(o, f)| ratio(o / f)));
            row.push(String::new());
            rows.push(row);
        }
        let mut headers = vec![String::new()];
        headers.extend(
            plan::SCALING_SIZES
                .iter()
                .map(|size| format!("{} objects", thousands(*size))),
        );
        headers.push("slowest / fastest".into());
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        Ok(table(&headers, rows))
    }

    pub(super) fn workers_table(&self) -> Result<String, Box<dyn Error>> {
        let mut rows = Vec::new();
        for worker in Worker::ALL {
            let warm = self.worker_ns(worker, "warm_call")?;
            let raw = self.worker_ns(worker, "raw_pipe")?;
            let spawn = self.worker_ns(worker, "spawn_per_job")?;
            rows.push(vec![
                worker.name().to_owned(),
                time(warm),
                time(raw),
                time(spawn),
                ratio(warm / raw),
                bold(format!("{} faster", ratio(spawn / warm))),
            ]);
        }
        Ok(table(
            &[
                "worker",
                "warm pool call",
                "raw pipe",
                "spawn per job",
                "warm / raw pipe (wall)",
                "warm vs spawn per job",
            ],
            rows,
        ))
    }

    pub(super) fn one_shot_table(&self) -> Result<String, Box<dyn Error>> {
        let pooled = self.ns(0, &format!("{}/command_pool", plan::GROUP_ONE_SHOT))?;
        let bare = self.ns(0, &format!("{}/bare_command", plan::GROUP_ONE_SHOT))?;
        Ok(table(
            &["`true` via", "time per command", "CommandPool / bare"],
            vec![
                vec![
                    "`CommandPool::run(CommandSpec::new(\"true\"))`".into(),
                    time(pooled),
                    ratio(pooled / bare),
                ],
                vec![
                    "`tokio::process::Command::new(\"true\").output()`".into(),
                    time(bare),
                    String::new(),
                ],
            ],
        ))
    }

    pub(super) fn pipe_table(&self) -> String {
        let mut rows = Vec::new();
        for (worker, repeats) in &self.pipes {
            let calls = pipe_plan(*worker).calls_per_repeat() as f64;
            let per_call = |d: std::time::Duration| time(d.as_secs_f64() * 1e9 / calls);
            for (i, repeat) in repeats.iter().enumerate() {
                rows.push(vec![
                    format!("{}, repeat {}", worker.name(), i + 1),
                    format!(
                        "{} ({})",
                        per_call(repeat.raw.cpu()),
                        per_call(repeat.raw.wall)
                    ),
                    format!(
                        "{} ({})",
                        per_call(repeat.pool.cpu()),
                        per_call(repeat.pool.wall)
                    ),
                    ratio(repeat.cpu_ratio()),
                    ratio(repeat.own_cpu_ratio()),
                    ratio(repeat.wall_ratio()),
                ]);
            }
            let median = |f: fn(&Repeat) -> f64| Spread::of(repeats.iter().map(f).collect()).median;
            rows.push(vec![
                format!("{}, median", worker.name()),
                String::new(),
                String::new(),
                bold(ratio(median(Repeat::cpu_ratio))),
                ratio(median(Repeat::own_cpu_ratio)),
                ratio(median(Repeat::wall_ratio)),
            ]);
        }
        table(
            &[
                "",
                "raw pipe: CPU (wall) per call",
                "pool call: CPU (wall) per call",
                "pool / raw, CPU",
                "pool / raw, CPU of this process only",
                "pool / raw, wall",
            ],
            rows,
        )
    }

    pub(super) fn machine_table(&self) -> String {
        let m = &self.machine;
        let mut rows = vec![
            vec![
                "CPUs".to_owned(),
                format!(
                    "{} (`std::thread::available_parallelism`, as `nproc` counts)",
                    m.cores
                ),
            ],
            vec![
                "CPU model".into(),
                format!(
                    "{}{}",
                    m.cpu_model,
                    if m.virtual_machine {
                        " (a virtual machine: `hypervisor` flag in /proc/cpuinfo)"
                    } else {
                        ""
                    }
                ),
            ],
        ];
        if let Some(gib) = m.memory_gib {
            rows.push(vec!["memory".into(), format!("{gib:.0} GiB")]);
        }
        rows.push(vec!["kernel".into(), m.kernel.clone()]);
        rows.push(vec!["compiler".into(), m.rustc.clone()]);
        rows.push(vec![
            "build".into(),
            "`release` profile (`opt-level = 3`), criterion 0.8, tokio runtime as each table says"
                .into(),
        ]);
        rows.push(vec!["date".into(), self.date.clone()]);
        if let Some(commit) = &self.commit {
            rows.push(vec!["commit".into(), commit.clone()]);
        }
        rows.push(vec!["command".into(), format!("`{COMMAND}`")]);
        rows.push(vec![
            "run time".into(),
            if self.options.reuse {
                format!(
                    "{:.1} min for the pinned comparison; the criterion results were reused from the previous run (`--reuse`)",
                    self.minutes
                )
            } else {
                format!(
                    "{:.1} min ({} of `get_drop` and `scaling`, one of `subprocess`, then the pinned comparison)",
                    self.minutes,
                    plural(self.options.rounds, "round")
                )
            },
        ]);
        rows.push(vec![
            "other load".into(),
            format!(
                "average CPUs kept busy by other processes while measuring (steal beside it \
                 when any): {}",
                self.load_summary()
            ),
        ]);
        table(&["", ""], rows)
    }
}
