use super::*;

fn entry(bytes: &[u8]) -> VersionEntry {
    VersionEntry::new(Digest::of(bytes), Utc::now(), None, &PluginSpec::default())
}

/// A manifest with `stripe` at versions 1 and 2, 2 active after 1.
fn two_versions() -> Manifest {
    let mut m = Manifest::default();
    for v in ["1", "2"] {
        m.add_version(
            "stripe",
            PluginKind::ProviderAdapter,
            v,
            entry(v.as_bytes()),
        )
        .unwrap();
        m.activate("stripe", v).unwrap();
    }
    m
}

fn parse(text: &str) -> Result<Manifest, RegistryError> {
    Manifest::parse(text, Path::new("/reg/manifest.toml"))
}

#[test]
fn round_trips_through_toml() {
    let mut m = two_versions();
    let spec = PluginSpec::from_toml(
        r#"
        allowed_hosts = ["api.stripe.com"]
        [limits]
        fuel = 5
        [config]
        base-url = "http://localhost"
        [secrets]
        key = "env:STRIPE_KEY"
        "#,
    )
    .unwrap();
    let full = VersionEntry::new(Digest::of(b"3"), Utc::now(), None, &spec);
    m.add_version("stripe", PluginKind::ProviderAdapter, "3", full)
        .unwrap();
    m.bump_revision();
    let text = m.to_toml();
    assert!(text.starts_with("# paygate plugin registry manifest"));
    assert_eq!(parse(&text).unwrap(), m);
    let stripe = m.plugin("stripe").unwrap();
    let loaded = stripe
        .version("stripe", "3")
        .unwrap()
        .spec("3", stripe.kind());
    assert_eq!(loaded.config["base-url"], "http://localhost");
    assert_eq!(loaded.kind, Some(PluginKind::ProviderAdapter));
    assert_eq!(loaded.version, "3");
}

#[test]
fn an_empty_file_is_an_empty_manifest_only_with_a_revision() {
    assert_eq!(parse("revision = 0").unwrap(), Manifest::default());
    let err = parse("").unwrap_err().to_string();
    assert!(err.contains("revision"), "{err}");
}

#[test]
fn hand_edits_that_break_the_manifest_are_refused_with_path_and_line() {
    let good = two_versions().to_toml();
    let cases = [
        (good.replace("active = \"2\"", "active = \"2"), "line"),
        (
            good.replace("active = \"2\"", "active = \"9\""),
            "version 9",
        ),
        (
            good.replace("kind =", "colour = 1\nkind ="),
            "unknown field",
        ),
        (good.replace("sha256:", "sha1:"), "invalid digest"),
        (
            good.replace("[plugins.stripe", "[plugins.Stripe"),
            "invalid plugin name",
        ),
    ];
    for (text, needle) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("manifest /reg/manifest.toml is invalid"),
            "{err}"
        );
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn publishing_the_same_version_again_is_a_no_op_that_may_add_a_signer() {
    let mut m = two_versions();
    let before = m.clone();
    let again = m.add_version("stripe", PluginKind::ProviderAdapter, "1", entry(b"1"));
    assert_eq!(again.unwrap(), PublishOutcome::AlreadyPublished);
    assert_eq!(m, before);

    let signer = KeyId::try_from("0123456789abcdef".to_owned()).unwrap();
    let signed = VersionEntry {
        signed_by: Some(signer.clone()),
        ..entry(b"1")
    };
    m.add_version("stripe", PluginKind::ProviderAdapter, "1", signed)
        .unwrap();
    let stripe = m.plugin("stripe").unwrap();
    assert_eq!(
        stripe.version("stripe", "1").unwrap().signed_by(),
        Some(&signer)
    );
}

#[test]
fn a_published_version_never_changes() {
    let mut m = two_versions();
    let err = assert_refused!(
        m.add_version("stripe", PluginKind::ProviderAdapter, "1", entry(b"other")),
        RegistryError::VersionExists { .. }
    );
    assert!(
        err.to_string()
            .contains("stripe@1 is already published as sha256:")
    );

    let hosts = VersionEntry {
        allowed_hosts: vec!["evil.example".into()],
        ..entry(b"1")
    };
    assert_refused!(
        m.add_version("stripe", PluginKind::ProviderAdapter, "1", hosts),
        RegistryError::SpecChanged { .. }
    );
}

#[test]
fn a_name_keeps_its_world() {
    let mut m = two_versions();
    let err = m
        .add_version("stripe", PluginKind::WebhookVerifier, "3", entry(b"3"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("implements the provider-adapter world"),
        "{err}"
    );
}

#[test]
fn activation_remembers_the_replaced_version_and_rollback_returns_to_it() {
    let mut m = two_versions();
    assert_eq!(m.activate("stripe", "2").unwrap(), Some("2".into()));
    assert_eq!(m.plugin("stripe").unwrap().previous(), ["1"]);

    assert_eq!(
        m.rollback("stripe").unwrap(),
        (Some("2".into()), "1".into())
    );
    assert_eq!(m.plugin("stripe").unwrap().active(), Some("1"));
    assert_refused!(
        m.rollback("stripe"),
        RegistryError::NothingToRollBack { .. }
    );
}

#[test]
fn activating_what_does_not_exist_is_refused() {
    let mut m = two_versions();
    let err = m.activate("stripe", "9").unwrap_err().to_string();
    assert_eq!(err, "plugin stripe has no version 9 (published: 1, 2)");
    let err = m.activate("paypal", "1").unwrap_err().to_string();
    assert_eq!(err, "no plugin named paypal in the registry");
}

#[test]
fn rollback_history_is_bounded() {
    let mut m = two_versions();
    for _ in 0..ROLLBACK_HISTORY {
        m.activate("stripe", "1").unwrap();
        m.activate("stripe", "2").unwrap();
    }
    assert_eq!(
        m.plugin("stripe").unwrap().previous().len(),
        ROLLBACK_HISTORY
    );
}

#[test]
fn names_and_versions_must_be_usable_everywhere() {
    for good in ["stripe", "paypal-v2", "9lives", "a_b"] {
        check_name(good).unwrap();
    }
    for bad in ["", "Stripe", "-x", "a b", "a/b", &"x".repeat(65)] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    for good in ["1.2.0", "2024-06-rc1", "1.0.0+build.5"] {
        check_version("p", good).unwrap();
    }
    for bad in ["", "1 0", "1@2", "1\n"] {
        assert!(check_version("p", bad).is_err(), "{bad:?}");
    }
}
