//! The compile cache: compiled component code on disk, authenticated.
//!
//! Loading compiled code is loading native code: it runs outside the
//! sandbox. So an artifact is used only if this host (or a tool sharing its
//! key) wrote it for exactly these component bytes and this engine:
//!
//! - its file name binds the component's SHA-256 and the engine's
//!   compatibility key (every compiler setting, tunable and feature, and
//!   wasmtime's version, from `Engine::precompile_compatibility_hash`);
//! - the file starts with an HMAC-SHA256 tag over a domain string, the
//!   digest, the compatibility key and the artifact, under a 32-byte key
//!   kept outside the cache directory (by default `<cache dir>.key`, made
//!   at first use with mode 0600).
//!
//! Whoever can write the cache directory but not the key can only make the
//! host recompile: an entry whose tag does not check is refused, counted in
//! [`CacheStats::rejected`], logged, and replaced by a fresh compile.

use std::hash::Hasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use paygate_plugin_registry::Digest;
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;

/// Separates cache tags from any other use of the key.
const DOMAIN: &[u8] = b"paygate-compile-cache-v1\n";
/// Bytes of the HMAC-SHA256 tag at the start of every artifact file.
const TAG_LEN: usize = 32;

/// Where a tool that compiles for hosts (`paygate plugins publish`) puts
/// the code, and the key it signs it with: the hosts' own settings.
#[derive(Clone, Debug)]
pub struct CacheLocation {
    /// The hosts' cache directory.
    pub dir: PathBuf,
    /// The hosts' cache key file; `None` for the default, `<dir>.key`.
    pub key_file: Option<PathBuf>,
}

/// What the compile cache did since the host started; rendered on the
/// admin `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Components loaded from an authenticated artifact.
    pub hits: AtomicU64,
    /// Components compiled (no artifact, or one that was refused).
    pub compiled: AtomicU64,
    /// Artifacts refused because their tag did not check: changed, replaced
    /// or written without this host's key.
    pub rejected: AtomicU64,
}

impl CacheStats {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why the cache cannot be used; the host then compiles every time.
#[derive(Debug, thiserror::Error)]
pub enum CacheKeyError {
    #[error("cannot {action} the compile cache key {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the compile cache key {} is not 64 hex digits; delete it to make a new one",
        path.display()
    )]
    Malformed { path: PathBuf },
    #[error(
        "the compile cache key {} may be read or written by others (mode {mode:o}); \
         make it 0600",
        path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("cannot make a compile cache key: the operating system's random source failed: {0}")]
    Random(getrandom::Error),
}

/// What a cache file turned out to be.
pub(crate) enum Opened<'a> {
    /// The artifact, its tag checked.
    Authentic(&'a [u8]),
    /// Not written with this key for this component and engine.
    Forged,
    /// No key, so nothing can be checked: the cache is off.
    NoKey,
}

/// A cache directory and the key that authenticates its artifacts.
pub(crate) struct CompileCache {
    dir: PathBuf,
    key_file: PathBuf,
    /// Read (or made) at first use; `None` when that failed.
    key: OnceLock<Option<[u8; 32]>>,
}

impl CompileCache {
    /// A cache in `dir`, its key in `key_file` or, by default, beside the
    /// directory (`<dir>.key`), never inside it.
    pub(crate) fn new(dir: PathBuf, key_file: Option<PathBuf>) -> Self {
        let key_file = key_file.unwrap_or_else(|| default_key_file(&dir));
        Self {
            dir,
            key_file,
            key: OnceLock::new(),
        }
    }

    /// The cache directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact of `digest` for an engine with `compat` lives.
    pub(crate) fn path(&self, digest: &Digest, compat: &str) -> PathBuf {
        self.dir.join(format!("{}-{compat}.cwasm", digest.hex()))
    }

    /// The key, read or made at first use. Without one the cache is off.
    fn key(&self) -> Option<&[u8; 32]> {
        self.key
            .get_or_init(|| match load_or_create_key(&self.key_file) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::warn!(error = %e, "compile cache off: every plugin load compiles");
                    None
                }
            })
            .as_ref()
    }

    /// The artifact in `file`, if its tag checks for `digest` and `compat`.
    pub(crate) fn open<'a>(&self, digest: &Digest, compat: &str, file: &'a [u8]) -> Opened<'a> {
        let Some(key) = self.key() else {
            return Opened::NoKey;
        };
        let Some((tag, artifact)) = file.split_at_checked(TAG_LEN) else {
            return Opened::Forged;
        };
        match tagger(key, digest, compat, artifact).verify_slice(tag) {
            Ok(()) => Opened::Authentic(artifact),
            Err(_) => Opened::Forged,
        }
    }

    /// Writes `artifact` with its tag, atomically: a crash mid-write never
    /// leaves a truncated entry. Nothing is written without a key.
    pub(crate) fn store(
        &self,
        digest: &Digest,
        compat: &str,
        artifact: &[u8],
    ) -> std::io::Result<()> {
        let Some(key) = self.key() else {
            return Ok(());
        };
        let tag = tagger(key, digest, compat, artifact)
            .finalize()
            .into_bytes();
        let path = self.path(digest, compat);
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&tag)?;
        file.write_all(artifact)?;
        file.sync_all()?;
        std::fs::rename(tmp, path)
    }
}

/// The HMAC of an artifact, bound to the component and the engine.
fn tagger(key: &[u8; 32], digest: &Digest, compat: &str, artifact: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(DOMAIN);
    mac.update(digest.as_bytes());
    mac.update(compat.as_bytes());
    mac.update(b"\n");
    mac.update(artifact);
    mac
}

/// A name for everything that makes compiled code valid for `engine`:
/// compiler target and flags, tunables, features and wasmtime's version, as
/// wasmtime hashes them, through SHA-256 so the name is stable.
pub(crate) fn compatibility_key(engine: &Engine) -> String {
    use std::hash::Hash as _;
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let hash = hasher.0.finalize();
    format!("w{}", hex::encode(&hash[..12]))
}

/// Feeds a `Hash` into SHA-256.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the SHA-256 is used; `Hash` implementations never call this.
        0
    }
}

/// `<dir>.key`, beside the cache directory.
fn default_key_file(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(
        || "paygate-cache".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    dir.with_file_name(format!("{name}.key"))
}

/// Reads the key at `path`, or makes one there if there is none. Two
/// processes starting at once agree: the file appears whole (a hard link of
/// a finished temporary file) and the second reads the first's.
fn load_or_create_key(path: &Path) -> Result<[u8; 32], CacheKeyError> {
    let io = |action, source| CacheKeyError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    match read_key(path) {
        Err(CacheKeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(CacheKeyError::Random)?;
    let tmp = path.with_extension(format!("key.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(io("create", e)),
    }
}

fn read_key(path: &Path) -> Result<[u8; 32], CacheKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| CacheKeyError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(CacheKeyError::TooOpen {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|_| CacheKeyError::Malformed {
        path: path.to_owned(),
    })?;
    Ok(key)
}
