//! `paygate config check`: the settings `serve` would run with, checked
//! without connecting to anything and printed as they take effect, with
//! where each came from. Secrets show only whether they are set; URLs show
//! no password.

use std::ffi::OsStr;

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory};

use super::Cli;
use crate::Config;
use crate::config::redacted;

/// `paygate config ...`.
#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Check the settings `serve` would run with (the same flags and
    /// environment) and print them, secrets redacted. Exits 2 naming the
    /// setting `serve` would refuse; secrets a plugin's spec names are
    /// checked when `serve` loads it.
    Check(Box<Config>),
}

/// Runs `command`; `argv` is the command line it was parsed from.
pub fn run(command: ConfigCommand, argv: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let ConfigCommand::Check(config) = command;
    let cli = Cli::command();
    let matches = cli.clone().get_matches_from(argv);
    let (Some(check), Some(args)) = (
        cli.find_subcommand("config")
            .and_then(|c| c.find_subcommand("check")),
        matches
            .subcommand_matches("config")
            .and_then(|m| m.subcommand_matches("check")),
    ) else {
        anyhow::bail!("`config check` was not on the command line");
    };
    for arg in check.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        ) {
            continue;
        }
        let name = arg
            .get_env()
            .and_then(OsStr::to_str)
            .map(str::to_owned)
            .or_else(|| arg.get_long().map(|long| format!("--{long}")))
            .unwrap_or_else(|| id.to_owned());
        let Some(source) = args.value_source(id) else {
            println!("{name} = (unset)");
            continue;
        };
        let raw: Vec<String> = args
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let shown = shown_value(&name, arg.is_hide_env_values_set(), &raw);
        let from = match source {
            ValueSource::DefaultValue => "default",
            ValueSource::EnvVariable => "environment",
            ValueSource::CommandLine => "flag",
            _ => "other",
        };
        println!("{name} = {shown}  ({from})");
    }
    crate::validate(&config)?;
    if config.admin_token.is_none() {
        println!("note: PAYGATE_ADMIN_TOKEN is unset: the admin API is off");
    }
    println!("configuration ok");
    Ok(())
}

/// A setting's value as `config check` prints it: a secret as `[set]`, a
/// URL that may hold a password without it.
fn shown_value(name: &str, secret: bool, raw: &[String]) -> String {
    if raw.is_empty() {
        return "(unset)".into();
    }
    if !secret {
        return raw.join(",");
    }
    if name.ends_with("_URL") {
        raw.iter()
            .map(|url| redacted(url))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        "[set]".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_show_as_set_and_urls_without_their_password() {
        let url = ["postgres://app:hunter2@db:5432/payments".to_owned()];
        assert_eq!(
            shown_value("PAYMENTS_DATABASE_URL", true, &url),
            "postgres://app:***@db:5432/payments"
        );
        assert_eq!(
            shown_value("STRIPE_SECRET_KEY", true, &["sk_live_x".into()]),
            "[set]"
        );
        assert_eq!(shown_value("STRIPE_SECRET_KEY", true, &[]), "(unset)");
        assert_eq!(
            shown_value("PAYGATE_LISTEN", false, &["0.0.0.0:8080".into()]),
            "0.0.0.0:8080"
        );
    }
}
