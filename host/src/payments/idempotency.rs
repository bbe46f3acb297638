//! Idempotency keys: the first request with a key does the work; retries
//! with the same body get its response again, other bodies a conflict.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::domain::IdempotencyKey;
use super::store::PaymentStore;
use crate::ids::{MerchantId, PaymentId};

/// The fingerprint of a request body for its idempotency key: SHA-256 of
/// its canonical JSON (object members sorted by name at every depth, no
/// whitespace), so the same body written another way is the same request.
pub fn fingerprint(body: &Value) -> [u8; 32] {
    let mut canonical = Vec::new();
    write_canonical(body, &mut canonical);
    Sha256::digest(&canonical).into()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (name, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_leaf(&Value::String(name.clone()), out);
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        leaf => write_leaf(leaf, out),
    }
}

fn write_leaf(leaf: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, leaf).expect("writing JSON into memory cannot fail");
}

/// What reserving an idempotency key came to: what the request should do.
#[derive(Debug, PartialEq)]
pub enum Reservation {
    /// First time: go ahead, then complete or release the key.
    Fresh,
    /// Taken over from a request that died after creating `payment_id`:
    /// finish that payment, then complete or release the key.
    Resume { payment_id: PaymentId },
    /// Done before: the outcome recorded then (see
    /// [`super::Outcome::from_record`]).
    Replay { kind: i16, record: Value },
    /// The key was used with a different body.
    Conflict,
    /// The first request is still running.
    InProgress,
}

impl PaymentStore {
    /// Reserves `key` for a request whose canonical body hashes to `hash`.
    /// An unfinished reservation older than `lease` is taken over: the
    /// request that made it is taken to have died.
    pub async fn reserve_key(
        &self,
        merchant_id: MerchantId,
        key: &IdempotencyKey,
        hash: &[u8],
        lease: Duration,
    ) -> Result<Reservation, sqlx::Error> {
        let inserted = sqlx::query!(
            "INSERT INTO idempotency_keys (merchant_id, key, request_hash, state) VALUES ($1, $2, $3, 'in_progress')
             ON CONFLICT (merchant_id, key) DO NOTHING",
            merchant_id.get(),
            key.as_str(),
            hash,
        )
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Reservation::Fresh);
        }
        let stored = sqlx::query!(
            "SELECT request_hash, state, response_status, response_body, created_at
             FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
            merchant_id.get(),
            key.as_str(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(stored) = stored else {
            // Released between our insert and select: try once more from the top.
            return Box::pin(self.reserve_key(merchant_id, key, hash, lease)).await;
        };
        if stored.request_hash != hash {
            return Ok(Reservation::Conflict);
        }
        if stored.state == "done" {
            return Ok(Reservation::Replay {
                kind: stored.response_status.unwrap_or_default(),
                record: stored.response_body.unwrap_or(Value::Null),
            });
        }
        let taken_over = sqlx::query_scalar!(
            r#"UPDATE idempotency_keys SET created_at = now()
               WHERE merchant_id = $1 AND key = $2 AND state = 'in_progress' AND created_at = $3
                 AND created_at < now() - make_interval(secs => $4)
               RETURNING payment_id AS "payment_id: PaymentId""#,
            merchant_id.get(),
            key.as_str(),
            stored.created_at,
            lease.as_secs_f64(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match taken_over {
            Some(Some(payment_id)) => Reservation::Resume { payment_id },
            Some(None) => Reservation::Fresh,
            None => Reservation::InProgress,
        })
    }

    /// Stores the final outcome of a reserved key, as
    /// [`super::Outcome::to_record`] encodes it.
    pub async fn complete_key(
        &self,
        merchant_id: MerchantId,
        key: &IdempotencyKey,
        kind: i16,
        record: &Value,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE idempotency_keys SET state = 'done', response_status = $3, response_body = $4
             WHERE merchant_id = $1 AND key = $2",
            merchant_id.get(),
            key.as_str(),
            kind,
            record,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Frees a reserved key whose request ended without a final answer. A
    /// key that created no payment is deleted, so a corrected retry can
    /// run; one that did is kept, free to reserve at once, so the next
    /// retry finishes that payment ([`Reservation::Resume`]).
    pub async fn release_key(
        &self,
        merchant_id: MerchantId,
        key: &IdempotencyKey,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "WITH kept AS (
                UPDATE idempotency_keys SET created_at = 'epoch'
                WHERE merchant_id = $1 AND key = $2 AND state = 'in_progress' AND payment_id IS NOT NULL
             )
             DELETE FROM idempotency_keys
             WHERE merchant_id = $1 AND key = $2 AND state = 'in_progress' AND payment_id IS NULL",
            merchant_id.get(),
            key.as_str(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod fingerprint_properties {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// A JSON value up to three levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// `members` written as a JSON object in the given order, with spaces.
    fn object_text(members: &[(String, Value)]) -> String {
        let members: Vec<String> = members
            .iter()
            .map(|(name, value)| format!("{} :  {}", json!(name), value))
            .collect();
        format!("{{ {} }}", members.join(" ,\n "))
    }

    proptest! {
        /// The same members in any order, spaced any way, are one request.
        #[test]
        fn member_order_and_spacing_do_not_matter(
            members in prop::collection::btree_map("[a-z_]{1,10}", json_value(), 1..8)
                .prop_map(|m| m.into_iter().collect::<Vec<_>>())
                .prop_shuffle(),
        ) {
            let written: Value = serde_json::from_str(&object_text(&members)).unwrap();
            let mut sorted = members.clone();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let sorted: Value = serde_json::from_str(&object_text(&sorted)).unwrap();
            prop_assert_eq!(fingerprint(&written), fingerprint(&sorted));
        }

        /// Changing any one member's value makes another request.
        #[test]
        fn another_value_is_another_request(
            members in prop::collection::btree_map("[a-z_]{1,10}", json_value(), 1..8),
            pick in any::<prop::sample::Index>(),
            other in json_value(),
        ) {
            let body = Value::Object(members.clone().into_iter().collect());
            let name = pick.get(&members.keys().collect::<Vec<_>>()).to_string();
            prop_assume!(members[&name] != other);
            let mut changed = body.clone();
            changed[&name] = other;
            prop_assert_ne!(fingerprint(&body), fingerprint(&changed));
        }
    }
}
