//! Every setting is read from a `PAYGATE_` variable. The names settings had
//! before they all carried the prefix are still read for one release: at
//! the top of `main`, each old name that is set (or its `_FILE`) is moved to
//! its new name, with a line on stderr saying so; where the new name is
//! set too, the new one wins and the old one is named as ignored.

use std::ffi::OsString;

/// `(new name, old name)` of each renamed setting.
pub const RENAMED: [(&str, &str); 16] = [
    ("PAYGATE_PAYMENTS_DATABASE_URL", "PAYMENTS_DATABASE_URL"),
    ("PAYGATE_MERCHANTS_DATABASE_URL", "MERCHANTS_DATABASE_URL"),
    ("PAYGATE_PROVIDERS_DATABASE_URL", "PROVIDERS_DATABASE_URL"),
    ("PAYGATE_LOGS_DATABASE_URL", "LOGS_DATABASE_URL"),
    ("PAYGATE_REDIS_URL", "REDIS_URL"),
    ("PAYGATE_RABBITMQ_URL", "RABBITMQ_URL"),
    ("PAYGATE_INTERNAL_WEBHOOK_SECRET", "INTERNAL_WEBHOOK_SECRET"),
    ("PAYGATE_STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY"),
    ("PAYGATE_STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET"),
    ("PAYGATE_OUTBOX_POLL_INTERVAL", "OUTBOX_POLL_INTERVAL"),
    ("PAYGATE_OUTBOX_LEASE", "OUTBOX_LEASE"),
    ("PAYGATE_OUTBOX_BATCH_SIZE", "OUTBOX_BATCH_SIZE"),
    ("PAYGATE_NOTIFIER_RETRY_SCHEDULE", "NOTIFIER_RETRY_SCHEDULE"),
    ("PAYGATE_NOTIFIER_TIMEOUT", "NOTIFIER_TIMEOUT"),
    ("PAYGATE_NOTIFIER_CONCURRENCY", "NOTIFIER_CONCURRENCY"),
    (
        "PAYGATE_NOTIFIER_PER_MERCHANT_CONCURRENCY",
        "NOTIFIER_PER_MERCHANT_CONCURRENCY",
    ),
];

/// What to do with one old name found in the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rename {
    /// Read `old`'s value as `new`.
    Adopt { old: String, new: String },
    /// `new` is set (itself or as a file): `old` is left unread.
    Ignore { old: String, new: String },
}

impl Rename {
    /// The stderr line telling an operator what happened.
    pub fn notice(&self) -> String {
        match self {
            Rename::Adopt { old, new } => {
                format!("paygate: {old} is read as {new}; rename it, the old name goes away")
            }
            Rename::Ignore { old, new } => {
                format!("paygate: {old} is ignored: {new} is set")
            }
        }
    }
}

/// The renames `get` (the environment) calls for: each old name, and each
/// old `_FILE`, that is set.
pub fn plan(get: impl Fn(&str) -> Option<OsString>) -> Vec<Rename> {
    let mut plan = Vec::new();
    for (new, old) in RENAMED {
        let new_is_set = get(new).is_some() || get(&format!("{new}_FILE")).is_some();
        for suffix in ["", "_FILE"] {
            let (old, new) = (format!("{old}{suffix}"), format!("{new}{suffix}"));
            if get(&old).is_none() {
                continue;
            }
            plan.push(if new_is_set {
                Rename::Ignore { old, new }
            } else {
                Rename::Adopt { old, new }
            });
        }
    }
    plan
}

/// Carries out [`plan`] on this process's environment, telling each on
/// stderr.
///
/// # Safety
/// Changes the environment: call it only while this process has one
/// thread (at the top of `main`, before a runtime starts).
pub unsafe fn adopt_old_names() {
    for rename in plan(|name| std::env::var_os(name)) {
        eprintln!("{}", rename.notice());
        if let Rename::Adopt { old, new } = rename
            && let Some(value) = std::env::var_os(&old)
        {
            // SAFETY: the caller guarantees no other thread reads the
            // environment.
            unsafe {
                std::env::set_var(new, value);
                std::env::remove_var(old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn an_old_name_is_adopted_unless_the_new_one_is_set() {
        let plan = plan(env(&[
            ("REDIS_URL", "redis://old"),
            ("RABBITMQ_URL", "amqp://old"),
            ("PAYGATE_RABBITMQ_URL", "amqp://new"),
            ("STRIPE_SECRET_KEY_FILE", "/run/secrets/stripe"),
            ("LOGS_DATABASE_URL", "postgres://old"),
            ("PAYGATE_LOGS_DATABASE_URL_FILE", "/run/secrets/logs"),
            ("PAYGATE_LISTEN", "0.0.0.0:8080"),
        ]));
        let adopt = |old: &str, new: &str| Rename::Adopt {
            old: old.into(),
            new: new.into(),
        };
        let ignore = |old: &str, new: &str| Rename::Ignore {
            old: old.into(),
            new: new.into(),
        };
        assert_eq!(
            plan,
            [
                ignore("LOGS_DATABASE_URL", "PAYGATE_LOGS_DATABASE_URL"),
                adopt("REDIS_URL", "PAYGATE_REDIS_URL"),
                ignore("RABBITMQ_URL", "PAYGATE_RABBITMQ_URL"),
                adopt("STRIPE_SECRET_KEY_FILE", "PAYGATE_STRIPE_SECRET_KEY_FILE"),
            ]
        );
        assert!(
            plan[1]
                .notice()
                .contains("REDIS_URL is read as PAYGATE_REDIS_URL")
        );
    }

    #[test]
    fn every_new_name_has_the_prefix_and_is_the_old_one_under_it() {
        for (new, old) in RENAMED {
            assert_eq!(new.strip_prefix("PAYGATE_"), Some(old));
        }
    }
}
