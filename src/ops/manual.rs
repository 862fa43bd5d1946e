//! The manual an installed refundd brings, made from the sources it describes
//! so it cannot drift from them: a man page per command from the command
//! line's own definition (clap_mangen: `refundd(1)`, `refundd-run(1)`,
//! `refundd-reconcile-resolve(1)`, ...), `refundd-settings(5)` from the
//! README's settings table (the table a test keeps equal to the settings
//! refundd reads), and completions for bash, zsh and fish (clap_complete).
//! `examples/package-assets.rs` writes them for the Debian package, given
//! the command line's definition (`cli::Cli`).

use clap::Command;
use clap_complete::Shell;
use roff::{bold, roman, Roff};
use std::io;
use std::path::{Path, PathBuf};

/// The README, whose "Configuration" table the settings page is made from.
const README: &str = include_str!("../../README.md");

/// One setting as the README's table gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    pub name: String,
    pub default: String,
    pub variable: String,
    pub meaning: String,
}

/// Writes `man1/*.1` (one page per command of `cli`, refundd's command
/// line) and `man5/refundd-settings.5` under `dir`; gives the paths written.
pub fn write_man_pages(dir: &Path, cli: Command) -> io::Result<Vec<PathBuf>> {
    let man1 = dir.join("man1");
    std::fs::create_dir_all(&man1)?;
    clap_mangen::generate_to(cli.clone(), &man1)?;
    std::fs::write(man1.join("refundd.1"), main_page(cli)?)?;
    let man5 = dir.join("man5");
    std::fs::create_dir_all(&man5)?;
    std::fs::write(man5.join("refundd-settings.5"), settings_page()?)?;
    let mut written = Vec::new();
    for sub in [&man1, &man5] {
        for entry in std::fs::read_dir(sub)? {
            written.push(entry?.path());
        }
    }
    written.sort();
    Ok(written)
}

/// Writes the completions of `cli` for bash (`refundd.bash`), zsh
/// (`_refundd`) and fish (`refundd.fish`) into `dir`; gives the paths written.
pub fn write_completions(dir: &Path, mut cli: Command) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| clap_complete::generate_to(shell, &mut cli, "refundd", dir))
        .collect()
}

/// The rows of the README's settings table.
pub fn setting_rows() -> Vec<SettingRow> {
    let cell = |c: &str| c.trim().replace('`', "").replace("\\|", "|");
    README
        .lines()
        .filter(|l| l.starts_with("| `") && l.matches(" | ").count() >= 3)
        .filter_map(|l| {
            let cells: Vec<&str> = split_cells(l);
            let [name, default, variable, meaning] = cells.as_slice() else {
                return None;
            };
            let name = cell(name);
            // Only settings: `section.key`, not the tables of metrics or events.
            let is_setting =
                name.contains('.') && !name.contains(' ') && variable.contains("REFUNDD__");
            is_setting.then(|| SettingRow {
                name,
                default: cell(default),
                variable: cell(variable),
                meaning: cell(meaning),
            })
        })
        .collect()
}

/// A Markdown table row's cells; `\|` inside a cell is not a separator.
fn split_cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut start = 0;
    let bytes = inner.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'|' && (i == 0 || bytes[i - 1] != b'\\') {
            cells.push(&inner[start..i]);
            start = i + 1;
        }
    }
    cells.push(&inner[start..]);
    cells
}

/// `refundd(1)`: clap_mangen's sections, then the exit status and where
/// the settings are described, in sections of their own.
fn main_page(cli: Command) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cli.disable_help_subcommand(true));
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut more = Roff::new();
    more.control("SH", ["EXIT STATUS"]);
    for (code, means) in EXIT_STATUS {
        more.control("TP", [] as [&str; 0])
            .text([bold(*code)])
            .text([roman(*means)]);
    }
    more.control("SH", ["FILES"])
        .text([roman(
            "/etc/refundd/refundd.env: the settings the packaged unit reads (refundd.service). \
             /etc/refundd/secrets/: one file per secret (the database URL, the MAC key, the IV, \
             the webhook secret), mode 0600, loaded as systemd credentials.",
        )])
        .control("SH", ["SEE ALSO"])
        .text([
            bold("refundd-settings"),
            roman("(5), /usr/share/doc/refundd/README.md"),
        ]);
    page.extend(more.render().into_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Every command's exit codes.
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Done."),
    (
        "1",
        "A runtime failure: the database lost, the bank unreachable for a command that needs it.",
    ),
    (
        "2",
        "Bad usage, settings or input; the message names the setting or the field and the fix. \
         Also a database migrated by a newer refundd (a downgrade is refused).",
    ),
    ("130", "The demo interrupted (Ctrl-C)."),
];

/// `refundd-settings(5)`.
fn settings_page() -> io::Result<String> {
    let rows = setting_rows();
    if rows.is_empty() {
        return Err(io::Error::other(
            "the README's settings table was not found: refundd-settings(5) would be empty",
        ));
    }
    let mut page = Roff::new();
    page.control("TH", ["REFUNDD-SETTINGS", "5", "", env!("CARGO_PKG_VERSION"), "refundd"])
        .control("SH", ["NAME"])
        .text([roman("refundd-settings - the settings refundd reads")])
        .control("SH", ["DESCRIPTION"])
        .text([roman(
            "Settings are read once at start-up, in layers: built-in defaults, config/default.toml \
             (relative to the working directory, when there is one), the TOML file given with \
             --config, then environment variables \
             REFUNDD__SECTION__KEY (DATABASE_URL too), then the secrets from files. A name that is no \
             setting is refused with the nearest known one; a value out of range, or settings that \
             together would defeat a rule keeping money safe, stop start-up with exit code 2, naming \
             the setting and the fix. The secrets (database.url, ctbc.mac_key, ctbc.iv, \
             notify.webhook_secret) go in files of their own, mode 0600, named by \
             REFUNDD__..._FILE or given as systemd credentials, never in the settings file.",
        )])
        .control("SH", ["SETTINGS"]);
    for row in &rows {
        page.control("TP", [] as [&str; 0])
            .text([bold(row.name.as_str())])
            .text([roman(format!(
                "{}. Default: {}. Variable: {}.",
                row.meaning.trim_end_matches('.'),
                row.default,
                row.variable
            ))]);
    }
    page.control("SH", ["FILES"])
        .text([roman(
            "/etc/refundd/refundd.env: the environment the packaged unit reads. \
             /etc/refundd/secrets/: the secret files (directory 0700).",
        )])
        .control("SH", ["SEE ALSO"])
        .text([
            bold("refundd"),
            roman("(1), "),
            bold("refundd-check"),
            roman("(1)"),
        ]);
    Ok(page.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_page_lists_every_setting_of_the_readme_table() {
        let rows = setting_rows();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        for name in [
            "database.url",
            "schedule.cron",
            "reconcile.cron",
            "worker.lease_secs",
        ] {
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
        let page = settings_page().unwrap();
        for row in &rows {
            assert!(page.contains(&row.variable), "{}", row.name);
        }
    }

    #[test]
    fn a_cell_may_hold_an_escaped_bar() {
        let cells = split_cells("| `log.format` | x \\| y | `REFUNDD__LOG__FORMAT` | z |");
        assert_eq!(cells.len(), 4, "{cells:?}");
        assert_eq!(cells[1].trim(), "x \\| y");
    }
}
