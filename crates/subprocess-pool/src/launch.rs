//! What to run and how, shared by worker specs and one-shot command specs: the program, its
//! arguments, environment and working directory, turned into a `tokio::process::Command`
//! that never passes through a shell and starts in a process group of its own.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The builder methods every spec wrapping a `launch: Launch` field shares: arguments,
/// environment and working directory.
macro_rules! launch_setters {
    () => {
        /// Adds one argument.
        pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
            self.launch.arg(arg);
            self
        }

        /// Adds arguments.
        pub fn args(mut self, args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>) -> Self {
            for arg in args {
                self.launch.arg(arg);
            }
            self
        }

        /// Sets an environment variable.
        pub fn env(
            mut self,
            key: impl AsRef<std::ffi::OsStr>,
            value: impl AsRef<std::ffi::OsStr>,
        ) -> Self {
            self.launch.env(key, value);
            self
        }

        /// Removes an environment variable.
        pub fn env_remove(mut self, key: impl AsRef<std::ffi::OsStr>) -> Self {
            self.launch.env_remove(key);
            self
        }

        /// Starts from an empty environment: the process sees only what is set with `env`.
        pub fn env_clear(mut self) -> Self {
            self.launch.env_clear = true;
            self
        }

        /// The working directory.
        pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.launch.current_dir = Some(dir.into());
            self
        }
    };
}
pub(crate) use launch_setters;

/// The program and its surroundings.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// Applied in order: `Some` sets, `None` removes.
    pub(crate) envs: Vec<(OsString, Option<OsString>)>,
    pub(crate) env_clear: bool,
    pub(crate) current_dir: Option<PathBuf>,
}

impl Launch {
    pub(crate) fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            env_clear: false,
            current_dir: None,
        }
    }

    pub(crate) fn arg(&mut self, arg: impl AsRef<OsStr>) {
        self.args.push(arg.as_ref().to_owned());
    }

    pub(crate) fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
    }

    pub(crate) fn env_remove(&mut self, key: impl AsRef<OsStr>) {
        self.envs.push((key.as_ref().to_owned(), None));
    }

    /// A command with piped stdin and stdout, `stderr` as given, in its own process group,
    /// killed if its handle is dropped (a safety net: the pool kills and reaps it itself).
    pub(crate) fn command(&self, stderr: Stdio) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args);
        if self.env_clear {
            command.env_clear();
        }
        for (key, value) in &self.envs {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        command
    }

    /// Explains a failed spawn, naming the path at fault.
    pub(crate) fn spawn_error(&self, source: io::Error) -> SpawnError {
        if let Some(dir) = &self.current_dir {
            if !dir.is_dir() {
                return SpawnError {
                    problem: format!(
                        "working directory {} does not exist or is not a directory",
                        dir.display()
                    ),
                    source,
                };
            }
        }
        let problem = match source.kind() {
            io::ErrorKind::NotFound => format!("program {} not found", self.program.display()),
            io::ErrorKind::PermissionDenied => {
                format!("program {} is not executable", self.program.display())
            }
            _ => format!("could not start program {}", self.program.display()),
        };
        SpawnError { problem, source }
    }

    pub(crate) fn program(&self) -> &Path {
        &self.program
    }
}

/// A process could not be started; the message names the program or directory at fault,
/// and the operating system's error is its `source()`.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct SpawnError {
    problem: String,
    source: io::Error,
}

impl SpawnError {
    /// The operating system's error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}
