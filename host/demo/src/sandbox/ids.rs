//! How each of the sandbox's APIs names what it hands out: prefixed ids for
//! the link API and Stripe's, `pspReference`s for Adyen's. The naming also
//! scopes each API's idempotency keys, so two APIs' keys never meet.

use rand::Rng;
use rand::distr::Alphanumeric;

/// Prefix of payment-link ids.
pub(crate) const LINK_PREFIX: &str = "pl_";
/// Prefix of the link API's refund ids.
pub(crate) const REFUND_PREFIX: &str = "rf_";
/// Prefix of Checkout Session ids, as Stripe's test mode names them.
pub(crate) const SESSION_PREFIX: &str = "cs_test_";
/// Prefix of Stripe event ids.
pub(crate) const EVENT_PREFIX: &str = "evt_";

/// Adyen's payments, and their idempotency keys.
pub(crate) const ADYEN_PAYMENTS: Ids = Ids::Psp("adyen-payment:");
/// Adyen's refunds, and theirs.
pub(crate) const ADYEN_REFUNDS: Ids = Ids::Psp("adyen-refund:");

/// How one API names what it opens or takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ids {
    /// The prefix, then 24 random letters and digits; the prefix is the
    /// keys' scope.
    Prefixed(&'static str),
    /// A [`psp_reference`]; the name is the keys' scope.
    Psp(&'static str),
}

impl Ids {
    /// A fresh id of this kind.
    pub(crate) fn new_id(self) -> String {
        match self {
            Ids::Prefixed(prefix) => new_id(prefix),
            Ids::Psp(_) => psp_reference(),
        }
    }

    /// What an idempotency key of this API is stored under.
    pub(crate) fn scope(self) -> &'static str {
        match self {
            Ids::Prefixed(scope) | Ids::Psp(scope) => scope,
        }
    }
}

/// `prefix` and 24 random alphanumerics, as the providers' ids look.
pub(crate) fn new_id(prefix: &str) -> String {
    let tail: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// A reference shaped as Adyen's `pspReference`: 16 random upper-case
/// letters and digits.
pub(crate) fn psp_reference() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psp_references_look_like_adyens() {
        let reference = ADYEN_PAYMENTS.new_id();
        assert_eq!(reference.len(), 16);
        assert!(
            reference
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{reference}"
        );
        assert_ne!(reference, ADYEN_PAYMENTS.new_id());
        assert!(
            Ids::Prefixed(SESSION_PREFIX)
                .new_id()
                .starts_with("cs_test_")
        );
    }
}
