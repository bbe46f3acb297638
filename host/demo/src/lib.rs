//! paygate-demo: what shows paygate working on one machine, kept out of the
//! production gateway.
//!
//! - [`sandbox`]: a stand-in payment provider speaking the dialects of the
//!   shipped `sandbox`, `stripe` and `adyen` adapters, with a hosted payment
//!   page and signed webhooks; the gateway's tests use it as their provider
//!   too.
//! - [`shop`]: the demo shop, a merchant that uses paygate through its public
//!   API only, with its own database (`migrations/demo/`).
//! - [`seed`]: `paygate-demo serve`'s demo merchant, alias bindings and the
//!   two servers started beside the API.
//!
//! `html` is what the sandbox's and the shop's pages share.

pub mod sandbox;
pub mod seed;
pub mod shop;

mod html;
