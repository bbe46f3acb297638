//! The form parameters of `POST /v1/checkout/sessions` the sandbox reads.

use std::collections::BTreeMap;

use super::reply::{is_currency, redirect_url};
use super::store::Session;

/// Stripe's own limits on metadata.
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY: usize = 40;
const MAX_METADATA_VALUE: usize = 500;
/// Stripe's limit on `client_reference_id`.
const MAX_REFERENCE: usize = 200;

/// A rejected parameter: what is wrong and which parameter it is.
pub(crate) type Invalid = (String, Option<&'static str>);

/// Reads the parameters the adapter sends; unknown ones are ignored, as
/// the sandbox models only what paygate uses.
pub(crate) fn parse(params: &[(String, String)]) -> Result<Session, Invalid> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if get("mode").is_some_and(|mode| mode != "payment") {
        return Err((
            "The sandbox supports only mode=payment.".into(),
            Some("mode"),
        ));
    }
    let currency = match get("line_items[0][price_data][currency]") {
        Some(code) if is_currency(code) => code.to_ascii_lowercase(),
        _ => {
            return Err((
                "A three-letter ISO currency code is required.".into(),
                Some("line_items[0][price_data][currency]"),
            ));
        }
    };
    let unit_amount = positive(get("line_items[0][price_data][unit_amount]"), true).ok_or((
        "unit_amount must be a positive integer in the currency's minor units.".into(),
        Some("line_items[0][price_data][unit_amount]"),
    ))?;
    let quantity = positive(get("line_items[0][quantity]"), false).ok_or((
        "quantity must be a positive integer.".into(),
        Some("line_items[0][quantity]"),
    ))?;
    let amount_total = unit_amount
        .checked_mul(quantity)
        .filter(|total| *total <= 99_999_999_999)
        .ok_or(("The total amount is too large.".to_string(), None))?;
    let client_reference_id = get("client_reference_id").map(str::to_string);
    if client_reference_id
        .as_ref()
        .is_some_and(|id| id.len() > MAX_REFERENCE)
    {
        return Err((
            format!("client_reference_id is longer than {MAX_REFERENCE} characters."),
            Some("client_reference_id"),
        ));
    }
    let url = |name: &'static str| {
        get(name)
            .map(|text| redirect_url(name, text).map_err(|message| (message, Some(name))))
            .transpose()
    };
    Ok(Session {
        client_reference_id,
        amount_total,
        currency,
        product_name: get("line_items[0][price_data][product_data][name]").map(str::to_string),
        metadata: metadata(params)?,
        success_url: url("success_url")?,
        cancel_url: url("cancel_url")?,
    })
}

/// A positive integer; a missing optional one counts as 1.
fn positive(text: Option<&str>, required: bool) -> Option<u64> {
    match text {
        None if !required => Some(1),
        None => None,
        Some(text) => text.parse::<u64>().ok().filter(|n| *n > 0),
    }
}

/// Every `metadata[key]=value`, within Stripe's limits.
fn metadata(params: &[(String, String)]) -> Result<BTreeMap<String, String>, Invalid> {
    let mut out = BTreeMap::new();
    for (name, value) in params {
        let Some(key) = name
            .strip_prefix("metadata[")
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            continue;
        };
        if key.is_empty() || key.len() > MAX_METADATA_KEY || key.contains(['[', ']']) {
            return Err((
                format!(
                    "Metadata keys must be 1 to {MAX_METADATA_KEY} characters without brackets."
                ),
                Some("metadata"),
            ));
        }
        if value.len() > MAX_METADATA_VALUE {
            return Err((
                format!("Metadata values must be at most {MAX_METADATA_VALUE} characters."),
                Some("metadata"),
            ));
        }
        out.insert(key.to_string(), value.clone());
    }
    if out.len() > MAX_METADATA_KEYS {
        return Err((
            format!("At most {MAX_METADATA_KEYS} metadata keys are allowed."),
            Some("metadata"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: [(&str, &str); 3] = [
        ("line_items[0][price_data][currency]", "EUR"),
        ("line_items[0][price_data][unit_amount]", "1050"),
        ("line_items[0][quantity]", "2"),
    ];

    #[test]
    fn reads_the_adapter_parameters() {
        let mut pairs = BASE.to_vec();
        pairs.extend([("metadata[order_id]", "9"), ("client_reference_id", "42")]);
        let session = parse(&params(&pairs)).unwrap();
        assert_eq!(session.amount_total, 2100);
        assert_eq!(session.currency, "eur");
        assert_eq!(session.metadata["order_id"], "9");
        assert_eq!(session.client_reference_id.as_deref(), Some("42"));
    }

    #[test]
    fn names_the_bad_parameter() {
        let bad = |extra: (&str, &str)| {
            let mut pairs = vec![extra];
            pairs.extend(BASE);
            parse(&params(&pairs)).unwrap_err().1
        };
        let amount = "line_items[0][price_data][unit_amount]";
        assert_eq!(bad((amount, "-5")), Some(amount));
        assert_eq!(bad(("success_url", "ftp://x")), Some("success_url"));
        assert_eq!(bad(("metadata[a]b]", "x")), Some("metadata"));
        assert_eq!(bad(("mode", "subscription")), Some("mode"));
    }
}
