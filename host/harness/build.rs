//! Vendors paygate's guest SDK (`plugins/guest-common`) into the Rust
//! projects `plugin new` writes: every source file of the crate as it is in
//! this checkout, and a manifest of its own, with the versions the plugins
//! workspace pins written out, so the copy builds outside that workspace.
//! Generated into `$OUT_DIR/guest_sdk.rs`; a file added to the SDK is
//! vendored without a change here.

use std::path::{Path, PathBuf};

fn main() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
    let sdk = plugins.join("guest-common");
    for watched in [
        sdk.join("src"),
        sdk.join("Cargo.toml"),
        plugins.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let mut sources = Vec::new();
    collect_sources(&sdk.join("src"), &mut sources);
    sources.sort();
    let mut out = String::from(
        "/// The guest SDK's sources: path in the vendored crate, text.\n\
         pub const GUEST_SDK_SOURCES: &[(&str, &str)] = &[\n",
    );
    for path in &sources {
        let relative = path.strip_prefix(&sdk).expect("under the SDK");
        let absolute = path.canonicalize().expect("an SDK source");
        out.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            relative.to_string_lossy().replace('\\', "/"),
            absolute.display().to_string()
        ));
    }
    out.push_str("];\n");
    out.push_str(&format!(
        "/// The vendored SDK's manifest.\npub const GUEST_SDK_MANIFEST: &str = {:?};\n",
        standalone_manifest(&sdk.join("Cargo.toml"), &plugins.join("Cargo.toml"))
    ));
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dest.join("guest_sdk.rs"), out).expect("writing guest_sdk.rs");
}

fn collect_sources(dir: &Path, into: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The SDK's manifest with each `x.workspace = true` replaced by what the
/// workspace says of `x`, and no workspace of its own to look for.
fn standalone_manifest(member: &Path, workspace: &Path) -> String {
    let read = |path: &Path| -> toml::Table {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let member = read(member);
    let workspace = read(workspace);
    let shared = &workspace["workspace"]["dependencies"];
    let package = &member["package"];
    let mut manifest = toml::Table::new();
    let mut own = toml::Table::new();
    for key in ["name", "version", "description"] {
        own.insert(key.into(), package[key].clone());
    }
    own.insert(
        "edition".into(),
        workspace["workspace"]["package"]["edition"].clone(),
    );
    own.insert("publish".into(), false.into());
    manifest.insert("package".into(), own.into());
    let mut dependencies = toml::Table::new();
    let listed = member["dependencies"].as_table().expect("[dependencies]");
    for (name, spec) in listed {
        let inherited = spec.get("workspace").and_then(toml::Value::as_bool) == Some(true);
        let resolved = if inherited {
            let mut table = match &shared[name] {
                toml::Value::String(version) => {
                    toml::Table::from_iter([("version".to_owned(), version.clone().into())])
                }
                other => other.as_table().expect("a dependency table").clone(),
            };
            // What the member adds to the inherited spec (features, optional).
            for (key, value) in spec.as_table().into_iter().flatten() {
                if key != "workspace" {
                    table.insert(key.clone(), value.clone());
                }
            }
            table.into()
        } else {
            spec.clone()
        };
        dependencies.insert(name.clone(), resolved);
    }
    manifest.insert("dependencies".into(), dependencies.into());
    format!(
        "# paygate's guest SDK, vendored by `paygate plugin new` at the host's version.\n{}",
        toml::to_string(&manifest).expect("a TOML manifest")
    )
}
