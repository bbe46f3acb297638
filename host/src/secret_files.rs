//! Secrets from files: wherever a secret setting `NAME` is read,
//! `NAME_FILE=<path>` gives it as that file's contents (API.md, "Running
//! outside the demo"), the way Kubernetes and Docker mount secrets. `main`
//! reads them into the environment before it parses the command line or
//! starts a thread, so every command and every flag's parser sees them as
//! if `NAME` itself had been set.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

use crate::RefusedSetting;

/// Every setting that is a secret or may hold one (a URL with a password):
/// each may be given as `NAME_FILE`, and none shows its value in `--help`.
/// Plugin secrets (`PAYGATE_PLUGIN_SECRET_*`, which specs name as
/// `env:NAME`) may be given as files too.
pub const SECRET_SETTINGS: [&str; 14] = [
    "PAYGATE_ADMIN_TOKEN",
    "PAYGATE_SECRETS_KEY",
    "PAYGATE_SECRETS_KEY_PREVIOUS",
    "PAYGATE_INTERNAL_WEBHOOK_SECRET",
    "PAYGATE_STRIPE_SECRET_KEY",
    "PAYGATE_STRIPE_WEBHOOK_SECRET",
    "PAYGATE_ADYEN_API_KEY",
    "PAYGATE_ADYEN_HMAC_KEY",
    "PAYGATE_PAYMENTS_DATABASE_URL",
    "PAYGATE_MERCHANTS_DATABASE_URL",
    "PAYGATE_PROVIDERS_DATABASE_URL",
    "PAYGATE_LOGS_DATABASE_URL",
    "PAYGATE_REDIS_URL",
    "PAYGATE_RABBITMQ_URL",
];

/// The prefix of the secrets plugins' specs may name (`env:NAME`).
pub const PLUGIN_SECRET_PREFIX: &str = "PAYGATE_PLUGIN_SECRET_";

/// The most a secret file may hold: a key, a token or a URL is far
/// shorter, and a path to `/dev/zero` must not hang the start.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The value of each of `names` given by a `NAME_FILE` in `vars` (a
/// lookup of the environment), read from its file. The file's trailing line
/// break is not part of the secret. Refused, naming the setting: a file
/// that cannot be read, is empty, too large or not UTF-8, and `NAME` set
/// beside `NAME_FILE` (which one would win is a guess no one should make).
pub fn from_files(
    names: &[String],
    vars: impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<(String, String)>, RefusedSetting> {
    let mut found = Vec::new();
    for name in names {
        let setting = format!("{name}_FILE");
        let Some(path) = vars(&setting) else { continue };
        let refused = |reason: String| RefusedSetting {
            setting: setting.clone(),
            reason,
        };
        if vars(name).is_some() {
            return Err(refused(format!("is set beside {name}: set one of them")));
        }
        let value = read(Path::new(&path)).map_err(refused)?;
        found.push((name.clone(), value));
    }
    Ok(found)
}

/// A secret file's contents without its trailing line break, or why not.
fn read(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "{shown} is larger than {MAX_SECRET_FILE} bytes: not a secret"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.trim().is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(value.to_owned())
}

/// `names`, and each plugin secret a `PAYGATE_PLUGIN_SECRET_*_FILE` among
/// `present` (the environment's variable names) gives.
pub fn with_plugin_secrets(
    names: &[&str],
    present: impl IntoIterator<Item = OsString>,
) -> Vec<String> {
    let plugin_secrets = present.into_iter().filter_map(|var| {
        let var = var.into_string().ok()?;
        let name = var.strip_suffix("_FILE")?;
        (name.len() > PLUGIN_SECRET_PREFIX.len() && name.starts_with(PLUGIN_SECRET_PREFIX))
            .then(|| name.to_owned())
    });
    let mut all: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
    all.extend(plugin_secrets);
    all
}

/// Reads each of `names`' `NAME_FILE` (and each plugin secret's) into
/// `NAME` in this process's environment, and removes `NAME_FILE`.
///
/// # Safety
/// Changes the environment: call it only while this process has one
/// thread (at the top of `main`, before a runtime starts).
pub unsafe fn load_into_environment(names: &[&str]) -> Result<(), RefusedSetting> {
    let names = with_plugin_secrets(names, std::env::vars_os().map(|(name, _)| name));
    for (name, value) in from_files(&names, |name| std::env::var_os(name))? {
        // SAFETY: the caller guarantees no other thread reads the environment.
        unsafe {
            std::env::set_var(&name, value);
            std::env::remove_var(format!("{name}_FILE"));
        }
    }
    Ok(())
}

/// `load_into_environment` for a command's `main`: a refused setting ends
/// the process as API.md says (status 2, one line naming it).
///
/// # Safety
/// As [`load_into_environment`].
pub unsafe fn load_or_exit(names: &[&str]) {
    // SAFETY: passed on to the caller.
    unsafe { crate::env_names::adopt_old_names() };
    // SAFETY: passed on to the caller.
    if let Err(refused) = unsafe { load_into_environment(names) } {
        eprintln!("paygate: refusing to start: {refused}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings() -> Vec<String> {
        SECRET_SETTINGS.map(str::to_owned).to_vec()
    }

    fn env(pairs: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn file(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_files_contents_without_its_line_break_are_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let key = file(&dir, "key", b"sk_test_from_a_file\n");
        let hmac = file(&dir, "hmac", b"00FF10\n");
        let url = file(&dir, "url", b"redis://:p%20w@cache:6379\r\n");
        let found = from_files(
            &settings(),
            env(&[
                ("PAYGATE_STRIPE_SECRET_KEY_FILE", &key),
                ("PAYGATE_ADYEN_HMAC_KEY_FILE", &hmac),
                ("PAYGATE_REDIS_URL_FILE", &url),
            ]),
        )
        .unwrap();
        assert_eq!(
            found,
            [
                (
                    "PAYGATE_STRIPE_SECRET_KEY".to_owned(),
                    "sk_test_from_a_file".to_owned()
                ),
                ("PAYGATE_ADYEN_HMAC_KEY".to_owned(), "00FF10".to_owned()),
                (
                    "PAYGATE_REDIS_URL".to_owned(),
                    "redis://:p%20w@cache:6379".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn plugin_secrets_may_be_files_too() {
        let present = [
            "PAYGATE_PLUGIN_SECRET_ADYEN_KEY_FILE",
            "PAYGATE_PLUGIN_SECRET__FILE",
            "OTHER_FILE",
        ];
        let names = with_plugin_secrets(&["PAYGATE_REDIS_URL"], present.map(OsString::from));
        assert_eq!(
            names,
            ["PAYGATE_REDIS_URL", "PAYGATE_PLUGIN_SECRET_ADYEN_KEY"]
        );
    }

    #[test]
    fn a_setting_outside_the_list_is_not_read_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "x", b"x");
        let found = from_files(&settings(), env(&[("PAYGATE_LISTEN_FILE", &path)]));
        assert_eq!(found.unwrap(), []);
    }

    #[test]
    fn unreadable_empty_large_or_ambiguous_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = file(&dir, "empty", b" \n");
        let binary = file(&dir, "binary", &[0xff, 0xfe]);
        let large = file(&dir, "large", &vec![b'a'; 64 * 1024 + 1]);
        let missing = dir.path().join("missing");
        let cases: [(&[(&str, &Path)], &str); 5] = [
            (
                &[("PAYGATE_STRIPE_SECRET_KEY_FILE", &missing)],
                "cannot open",
            ),
            (&[("PAYGATE_STRIPE_SECRET_KEY_FILE", &empty)], "is empty"),
            (&[("PAYGATE_STRIPE_SECRET_KEY_FILE", &binary)], "not UTF-8"),
            (&[("PAYGATE_STRIPE_SECRET_KEY_FILE", &large)], "larger than"),
            (
                &[
                    ("PAYGATE_STRIPE_SECRET_KEY_FILE", &empty),
                    ("PAYGATE_STRIPE_SECRET_KEY", &missing),
                ],
                "set beside PAYGATE_STRIPE_SECRET_KEY",
            ),
        ];
        for (vars, reason) in cases {
            let refused = from_files(&settings(), env(vars)).unwrap_err();
            assert_eq!(refused.setting, "PAYGATE_STRIPE_SECRET_KEY_FILE");
            assert!(refused.reason.contains(reason), "{refused}");
        }
    }

    #[test]
    fn a_device_that_never_ends_is_refused_not_read_forever() {
        let zero = Path::new("/dev/zero");
        let refused =
            from_files(&settings(), env(&[("PAYGATE_REDIS_URL_FILE", zero)])).unwrap_err();
        assert!(refused.reason.contains("larger than"), "{refused}");
    }
}
