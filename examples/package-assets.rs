//! Writes what the Debian package installs besides the binary and the files
//! kept in the repository: the man pages and the shell completions, made from
//! the command line's own definition (`ops::manual`).
//!
//!   cargo run --release --example package-assets -- target/package-assets

use clap::CommandFactory;
use refundd::cli::Cli;
use refundd::ops::manual::{write_completions, write_man_pages};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: package-assets DIR");
        return ExitCode::from(2);
    };
    let written = write_man_pages(&dir.join("man"), Cli::command()).and_then(|mut man| {
        man.extend(write_completions(&dir.join("completions"), Cli::command())?);
        Ok(man)
    });
    match written {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("package-assets: {e}");
            ExitCode::FAILURE
        }
    }
}
