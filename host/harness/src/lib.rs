//! paygate-harness: runs a plugin component's conformance suite against a
//! mock host, for `paygate plugin test`, `paygate plugin run`, the small
//! standalone `paygate-plugin` binary and an integrator's own `cargo test`.
//! It needs no database, broker or cache: only the plugin runtime.
//!
//! The harness loads the component into the real plugin runtime (same
//! engine settings, limits and host imports as `paygate serve`), detects its
//! world and runs that world's suite (`provider`, `verifier`,
//! `policy`). The host around it is a mock (`host`, `mock`): a loopback HTTP
//! server plays the payment provider, answering from fixtures
//! (`fixtures`: built-in ones per case, plus recorded exchanges a user
//! adds in a folder); counters live in memory and the clock is fixed, so
//! expiry and refill can be tested without waiting. Each case reports its
//! verdict, call latency, fuel and peak linear memory ([`Report`]: text and
//! JUnit XML). [`run_once`] makes one call from a JSON description instead;
//! [`cli`] is the command line both binaries share; [`scaffold`] starts a
//! plugin project (`plugin new`). [`Harness`] (`suite`)
//! ties it together.
//!
//! In a plugin's own repository, with `paygate-harness` as a dev-dependency:
//!
//! ```no_run
//! # async fn example() {
//! let report = paygate_harness::Harness::from_file("target/wasm32-wasip2/release/my_adapter.wasm")
//!     .expect("built component")
//!     .fixtures("tests/fixtures")
//!     .secret("secret-key", "sk_test_123")
//!     .run()
//!     .await
//!     .expect("harness");
//! report.assert_passed(); // panics with the readable report on any failure
//! # }
//! ```

pub mod cli;
pub mod replay;
pub mod scaffold;

mod case;
mod fixtures;
mod host;
mod mock;
mod outcome;
mod policy;
mod profile;
mod provider;
mod report;
mod run;
mod suite;
mod verifier;

pub use case::{CaseResult, Measured, Verdict};
pub use fixtures::{Fixture, FixtureError, FixtureResponse};
pub use profile::Profile;
pub use report::Report;
pub use run::{RunInput, RunOutput, run_once, run_once_with};
pub use suite::{DEFAULT_HTTP_TIMEOUT, DEFAULT_SECRETS, Harness, HarnessError, Options};
pub use verifier::Scheme;
