//! Jobs, read from stdin or files, split on newlines or NULs.

use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// One job: its number in the input (from 1, across files) and its bytes, without the
/// separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub(crate) number: u64,
    pub(crate) bytes: Vec<u8>,
}

/// Reads every job of `files` (stdin when there are none) into `jobs`, separated by
/// `separator`; stops early when the receiver is gone. An error names the file.
pub(crate) async fn read_jobs(
    files: Vec<PathBuf>,
    separator: u8,
    jobs: mpsc::Sender<Job>,
) -> Result<(), String> {
    let mut number = 0;
    if files.is_empty() {
        return read_from(tokio::io::stdin(), "stdin", separator, &mut number, &jobs).await;
    }
    for path in files {
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let name = path.display().to_string();
        read_from(file, &name, separator, &mut number, &jobs).await?;
    }
    Ok(())
}

async fn read_from(
    source: impl AsyncRead + Unpin,
    name: &str,
    separator: u8,
    number: &mut u64,
    jobs: &mpsc::Sender<Job>,
) -> Result<(), String> {
    let mut reader = BufReader::with_capacity(64 * 1024, source);
    loop {
        let mut bytes = Vec::new();
        let read = reader
            .read_until(separator, &mut bytes)
            .await
            .map_err(|error| format!("cannot read {name}: {error}"))?;
        if read == 0 {
            return Ok(());
        }
        if bytes.last() == Some(&separator) {
            bytes.pop();
        }
        *number += 1;
        if jobs
            .send(Job {
                number: *number,
                bytes,
            })
            .await
            .is_err()
        {
            return Ok(()); // no more jobs wanted (interrupted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn jobs_of(input: &'static [u8], separator: u8) -> Vec<Job> {
        let (sender, mut receiver) = mpsc::channel(16);
        let mut number = 0;
        read_from(input, "test", separator, &mut number, &sender)
            .await
            .unwrap();
        drop(sender);
        let mut jobs = Vec::new();
        while let Some(job) = receiver.recv().await {
            jobs.push(job);
        }
        jobs
    }

    #[tokio::test]
    async fn lines_and_nul_separated_jobs_are_numbered_from_one() {
        let jobs = jobs_of(b"a\nb\n\nc", b'\n').await;
        let bytes: Vec<&[u8]> = jobs.iter().map(|job| &job.bytes[..]).collect();
        assert_eq!(bytes, [&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(jobs[3].number, 4);
        let jobs = jobs_of(b"x y\0z\n\0", 0).await;
        let bytes: Vec<&[u8]> = jobs.iter().map(|job| &job.bytes[..]).collect();
        assert_eq!(bytes, [&b"x y"[..], b"z\n"]);
        assert!(jobs_of(b"", b'\n').await.is_empty());
    }
}
