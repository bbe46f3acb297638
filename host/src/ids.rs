//! Ids of the gateway's rows, one type each, so that a payment id cannot go
//! where a merchant id is meant. Each is a `BIGINT` in its database
//! (`#[sqlx(transparent)]`: a query names it with a type override such as
//! `id AS "id: PaymentId"`), a number in JSON, and reads from text as the
//! API and the CLI accept it: a whole number from 1.

/// Defines an id type over an `i64`.
macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id numbered `raw`, as its database stores it.
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }

            /// The number: for SQL parameters, the WIT and log fields.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, InvalidId> {
                match text.parse::<i64>() {
                    Ok(raw) if raw >= 1 => Ok(Self(raw)),
                    _ => Err(InvalidId),
                }
            }
        }
    };
}

/// Text that is no id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be a positive whole number")]
pub struct InvalidId;

id!(
    /// A payment (`payments.id`), as the API names it.
    PaymentId
);
id!(
    /// A merchant (`merchants.id`).
    MerchantId
);
id!(
    /// A merchant's own order number: unique per merchant, not globally.
    OrderId
);
id!(
    /// A merchant's subscription (`subscriptions.id`), which holds its quota.
    SubscriptionId
);
id!(
    /// A merchant notification's row in the outbox (`outbox.id`).
    OutboxId
);
id!(
    /// A refund of a payment (`refunds.id`).
    RefundId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_positive_whole_numbers_and_print_them_back() {
        assert_eq!("42".parse::<PaymentId>(), Ok(PaymentId::new(42)));
        assert_eq!(PaymentId::new(42).to_string(), "42");
        for bad in ["0", "-1", "1.5", "", " 1", "9223372036854775808", "x"] {
            assert_eq!(bad.parse::<MerchantId>(), Err(InvalidId), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_plain_numbers_in_json() {
        let id = OrderId::new(7);
        assert_eq!(serde_json::to_string(&id).unwrap(), "7");
        assert_eq!(serde_json::from_str::<OrderId>("7").unwrap(), id);
    }
}
