//! The report's command line: `--rounds N` and `--reuse`.

use std::error::Error;

/// Command-line options.
pub(crate) struct Options {
    pub(crate) rounds: usize,
    pub(crate) reuse: bool,
}

/// Parses `--rounds N` and `--reuse`.
pub(crate) fn options() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        rounds: 3,
        reuse: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                options.rounds = args.next().ok_or("--rounds needs a number")?.parse()?;
                if options.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--reuse" => options.reuse = true,
            other => {
                return Err(format!("unknown argument {other:?} (use --rounds N, --reuse)").into());
            }
        }
    }
    Ok(options)
}
