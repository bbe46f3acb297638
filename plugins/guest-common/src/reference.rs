//! The names paygate gives its own objects at a provider, written by an
//! adapter and read back by the same provider's verifier.

/// What a refund's provider-side reference starts with; the host's refund
/// idempotency keys have the same form.
const REFUND_PREFIX: &str = "paygate-refund-";

/// The reference an adapter sends with refund `id`, e.g. `paygate-refund-9`.
pub fn refund(id: u64) -> String {
    format!("{REFUND_PREFIX}{id}")
}

/// The refund id in a reference written by [`refund`]; `None` for any other
/// text, including a sign or leading zeros, which [`refund`] never writes:
/// a reference the provider got from elsewhere names no paygate refund.
pub fn parse_refund(text: &str) -> Option<u64> {
    let digits = text.strip_prefix(REFUND_PREFIX)?;
    let id: u64 = digits.parse().ok()?;
    (id.to_string() == digits).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_refund_references() {
        assert_eq!(refund(9), "paygate-refund-9");
        for id in [0, 9, u64::MAX] {
            assert_eq!(parse_refund(&refund(id)), Some(id));
        }
    }

    #[test]
    fn refuses_other_references() {
        for text in [
            "",
            "9",
            "paygate-refund-",
            "paygate-refund-+9",
            "paygate-refund--9",
            "paygate-refund-09",
            "paygate-refund-9 ",
            "paygate-refund-9x",
            "paygate-refund-18446744073709551616",
            "PAYGATE-REFUND-9",
            "shop-refund-9",
        ] {
            assert_eq!(parse_refund(text), None, "{text:?}");
        }
    }
}
