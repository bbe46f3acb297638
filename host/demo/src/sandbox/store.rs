//! The sandbox's memory: every payment it opened and refund it took, by
//! id, and the idempotency keys that asked for them. Nothing survives a
//! restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SandboxArgs;
use super::ids::Ids;
use paygate::plugins::Secret;

/// Where a payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    Finished,
    Failed,
}

/// A payment link as the `sandbox` adapter asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub payment_id: u64,
    pub merchant_id: u64,
    pub order_id: u64,
    pub amount: String,
    pub price: String,
    pub currency: String,
    /// Where Pay sends the buyer (and Decline, without a cancel URL).
    pub return_url: Option<String>,
    /// Where Decline sends the buyer.
    pub cancel_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A Checkout Session as the `stripe` adapter asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    pub client_reference_id: Option<String>,
    /// In the currency's minor units, as Stripe counts.
    pub amount_total: u64,
    /// Lower case, as Stripe answers.
    pub currency: String,
    pub product_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
}

/// A payment as the `adyen` adapter asked for it (Checkout API
/// `/payments`, a redirect payment method). The merchant account is the
/// payment's `account`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AdyenPayment {
    /// The merchant's reference: paygate's payment id.
    pub reference: String,
    /// In the currency's minor units.
    pub value: u64,
    /// Upper case.
    pub currency: String,
    /// `paymentMethod.type`.
    pub method: String,
    /// Where the buyer goes after paying or declining: Adyen has one.
    pub return_url: String,
    /// `merchantOrderReference`: the merchant's order id.
    pub order_reference: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// What was asked for. It doubles as the idempotency fingerprint: a key
/// reused with a different order is a conflict, not a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    Link(Link),
    Session(Session),
    Adyen(AdyenPayment),
}

impl Order {
    /// The price with its upper-case currency.
    fn total(&self) -> (rust_decimal::Decimal, String) {
        let minor = |value: u64, currency: &str| {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            rust_decimal::Decimal::new(value, exponent(currency))
        };
        match self {
            Order::Link(link) => (
                link.price.parse().unwrap_or_default(),
                link.currency.clone(),
            ),
            Order::Session(session) => (
                minor(session.amount_total, &session.currency),
                session.currency.to_ascii_uppercase(),
            ),
            Order::Adyen(adyen) => (
                adyen_amount(adyen.value, &adyen.currency),
                adyen.currency.clone(),
            ),
        }
    }
}

/// One payment the sandbox opened.
#[derive(Clone, Debug)]
pub(crate) struct Payment {
    pub id: String,
    /// The Stripe account (the bearer key's) or the Adyen merchant account
    /// that opened it; `None` for the link API, which has no accounts.
    pub account: Option<String>,
    pub order: Order,
    pub outcome: Outcome,
    /// Unix seconds.
    pub created: u64,
    /// The last webhook delivery attempt, in words, once there was one.
    pub delivery: Option<String>,
}

/// The answer to a create request.
pub(crate) enum Opened {
    New(Payment),
    /// The idempotency key was seen with the same order.
    Replayed(Payment),
    /// The idempotency key was seen with another order.
    Conflict,
    /// [`Settings::max_payments`] reached.
    Full,
}

/// The settings the handlers need, taken from [`SandboxArgs`].
pub(crate) struct Settings {
    /// Without a trailing slash.
    pub public_url: String,
    /// Without a trailing slash.
    pub gateway_url: String,
    pub internal_secret: Secret,
    pub stripe_secret: Secret,
    /// The `X-API-Key` Adyen's API takes.
    pub adyen_api_key: Secret,
    /// The HMAC key of Adyen's notifications, in hex as Adyen shows it.
    pub adyen_hmac_key: Secret,
    /// Payments, and refunds, held at most.
    pub max_payments: usize,
}

/// Where a refund stands at the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefundOutcome {
    Pending,
    Succeeded,
    Failed,
}

/// One refund the sandbox took.
#[derive(Clone, Debug)]
pub(crate) struct SandboxRefund {
    pub id: String,
    /// The account that took it, as its payment's.
    pub account: Option<String>,
    /// The sandbox payment it gives money back on.
    pub payment: String,
    /// paygate's refund id, as the adapter sent it.
    pub refund_id: u64,
    /// The merchant's reference of the refund, where the API takes one
    /// (Adyen's `reference`).
    pub reference: Option<String>,
    pub price: rust_decimal::Decimal,
    pub currency: String,
    pub outcome: RefundOutcome,
}

/// What asking for a refund came to.
pub(crate) enum Refunded {
    New(SandboxRefund),
    Replayed(SandboxRefund),
    /// The key was used for another refund.
    Conflict,
    NoSuchPayment,
    /// The payment was never paid.
    NotPaid,
    /// More than the payment has left.
    TooMuch {
        left: rust_decimal::Decimal,
    },
    WrongCurrency,
    Full,
}

/// A refund as one of the APIs asked for it.
pub(crate) struct Asked<'a> {
    /// How the API names refunds, which also scopes its idempotency keys.
    pub ids: Ids,
    /// The account asking (Stripe's and Adyen's APIs), which scopes them too.
    pub account: Option<&'a str>,
    pub key: Option<&'a str>,
    /// paygate's refund id.
    pub refund_id: u64,
    /// The merchant's reference of the refund, if the API takes one.
    pub reference: Option<&'a str>,
    pub price: rust_decimal::Decimal,
    pub currency: &'a str,
    /// What the test price asks for.
    pub outcome: RefundOutcome,
}

#[derive(Default)]
struct Memory {
    payments: HashMap<String, Payment>,
    refunds: HashMap<String, SandboxRefund>,
    /// `{scope}{account}:{key}` to payment or refund id, so two APIs'
    /// keys, and two accounts' keys, never meet.
    keys: HashMap<String, String>,
}

/// The state every handler shares.
#[derive(Clone)]
pub(crate) struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    http: reqwest::Client,
    memory: Mutex<Memory>,
}

impl Sandbox {
    pub(crate) fn new(args: &SandboxArgs) -> Self {
        let http = reqwest::Client::builder()
            // Webhooks go to the configured gateway and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("building an HTTP client with static settings");
        let settings = Settings {
            public_url: args.public_url.trim_end_matches('/').to_string(),
            gateway_url: args.gateway_url.trim_end_matches('/').to_string(),
            internal_secret: args.internal_webhook_secret.clone(),
            stripe_secret: args.stripe_webhook_secret.clone(),
            adyen_api_key: args.adyen_api_key.clone(),
            adyen_hmac_key: args.adyen_hmac_key.clone(),
            max_payments: args.max_payments,
        };
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                memory: Mutex::default(),
            }),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The buyer-facing page of a payment.
    pub(crate) fn payment_url(&self, id: &str) -> String {
        format!("{}/pay/{id}", self.inner.settings.public_url)
    }

    /// Opens a payment with an id named as `ids` says, or finds the one
    /// `key` opened before. Check and insert happen under one lock, so two
    /// concurrent requests with one key still open one payment.
    pub(crate) fn open(
        &self,
        ids: Ids,
        account: Option<&str>,
        key: Option<&str>,
        order: Order,
    ) -> Opened {
        let mut memory = self.lock();
        let scoped = key.map(|k| scoped_key(ids.scope(), account, k));
        if let Some(earlier) = scoped
            .as_ref()
            .and_then(|k| memory.keys.get(k))
            .and_then(|id| memory.payments.get(id))
        {
            return if earlier.order == order {
                Opened::Replayed(earlier.clone())
            } else {
                Opened::Conflict
            };
        }
        if memory.payments.len() >= self.inner.settings.max_payments {
            return Opened::Full;
        }
        let payment = Payment {
            id: ids.new_id(),
            account: account.map(str::to_owned),
            order,
            outcome: Outcome::Pending,
            created: unix_now(),
            delivery: None,
        };
        if let Some(scoped) = scoped {
            memory.keys.insert(scoped, payment.id.clone());
        }
        memory.payments.insert(payment.id.clone(), payment.clone());
        Opened::New(payment)
    }

    /// A copy of the payment `id`.
    pub(crate) fn get(&self, id: &str) -> Option<Payment> {
        self.lock().payments.get(id).cloned()
    }

    /// Moves a pending payment to `outcome`. Returns the payment and whether
    /// it changed; a settled payment stays as it is, so a second click (or a
    /// click on the other button) sends nothing.
    pub(crate) fn settle(&self, id: &str, outcome: Outcome) -> Option<(Payment, bool)> {
        let mut memory = self.lock();
        let payment = memory.payments.get_mut(id)?;
        let changed = payment.outcome == Outcome::Pending;
        if changed {
            payment.outcome = outcome;
        }
        Some((payment.clone(), changed))
    }

    /// Takes a refund of `price` on payment `payment`, or finds the one
    /// `key` took before. A refund never takes a payment past its price:
    /// the check and the insert happen under one lock.
    pub(crate) fn refund(&self, payment: &str, asked: Asked<'_>) -> Refunded {
        let Asked {
            ids,
            account,
            key,
            refund_id,
            reference,
            price,
            currency,
            outcome,
        } = asked;
        let mut memory = self.lock();
        let scoped = key.map(|k| scoped_key(ids.scope(), account, k));
        if let Some(earlier) = scoped
            .as_ref()
            .and_then(|k| memory.keys.get(k))
            .and_then(|id| memory.refunds.get(id))
        {
            let same = earlier.payment == payment && earlier.price == price;
            return if same {
                Refunded::Replayed(earlier.clone())
            } else {
                Refunded::Conflict
            };
        }
        let Some(paid) = (memory.payments.get(payment)).filter(|p| p.account.as_deref() == account)
        else {
            return Refunded::NoSuchPayment;
        };
        if paid.outcome != Outcome::Finished {
            return Refunded::NotPaid;
        }
        let (total, paid_currency) = paid.order.total();
        if !paid_currency.eq_ignore_ascii_case(currency) {
            return Refunded::WrongCurrency;
        }
        let taken: rust_decimal::Decimal = memory
            .refunds
            .values()
            .filter(|r| r.payment == payment && r.outcome != RefundOutcome::Failed)
            .map(|r| r.price)
            .sum();
        if price > total - taken {
            return Refunded::TooMuch {
                left: total - taken,
            };
        }
        if memory.refunds.len() >= self.inner.settings.max_payments {
            return Refunded::Full;
        }
        let refund = SandboxRefund {
            id: ids.new_id(),
            account: account.map(str::to_owned),
            payment: payment.to_owned(),
            refund_id,
            reference: reference.map(str::to_owned),
            price,
            currency: paid_currency,
            outcome,
        };
        if let Some(scoped) = scoped {
            memory.keys.insert(scoped, refund.id.clone());
        }
        memory.refunds.insert(refund.id.clone(), refund.clone());
        Refunded::New(refund)
    }

    /// A copy of refund `id`.
    pub(crate) fn get_refund(&self, id: &str) -> Option<SandboxRefund> {
        self.lock().refunds.get(id).cloned()
    }

    /// Settles a pending refund; a settled one stays as it is.
    pub(crate) fn settle_refund(&self, id: &str, outcome: RefundOutcome) -> Option<SandboxRefund> {
        let mut memory = self.lock();
        let refund = memory.refunds.get_mut(id)?;
        if refund.outcome == RefundOutcome::Pending {
            refund.outcome = outcome;
        }
        Some(refund.clone())
    }

    /// Notes how the last webhook attempt for `id` went, for its page.
    pub(crate) fn record_delivery(&self, id: &str, text: String) {
        if let Some(payment) = self.lock().payments.get_mut(id) {
            payment.delivery = Some(text);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Memory> {
        // Every critical section leaves the maps consistent, so a panic
        // elsewhere while holding the lock is no reason to stop serving.
        self.inner
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An idempotency key as stored: its API's scope and its account first.
fn scoped_key(scope: &str, account: Option<&str>, key: &str) -> String {
    format!("{scope}{}:{key}", account.unwrap_or_default())
}

/// Decimal places of a currency's minor unit, as Stripe counts them (and
/// Adyen, for the currencies paygate's test prices use).
pub(crate) fn exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "JPY" | "KMF" | "KRW" | "MGA" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" | "ISK" => 0,
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

/// Decimal places Adyen counts a currency's minor units in: Stripe's,
/// except where Adyen's published table departs from ISO 4217 (CLP and ISK
/// in hundredths, CVE and IDR in whole units). Written apart from the
/// adapters' `guest_common::money::adyen_exponent` on purpose, as
/// [`exponent`] is: the sandbox is what the adapters are checked against.
pub(crate) fn adyen_exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "CLP" | "ISK" => 2,
        "CVE" | "IDR" => 0,
        _ => exponent(currency),
    }
}

/// An Adyen `amount` (`value` in Adyen's minor units) as a price.
pub(crate) fn adyen_amount(value: u64, currency: &str) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(
        i64::try_from(value).unwrap_or(i64::MAX),
        adyen_exponent(currency),
    )
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adyen(value: u64, currency: &str) -> Order {
        Order::Adyen(AdyenPayment {
            reference: "1".into(),
            value,
            currency: currency.into(),
            method: "scheme".into(),
            return_url: "http://shop.invalid/".into(),
            order_reference: None,
            metadata: BTreeMap::new(),
        })
    }

    #[test]
    fn adyen_amounts_are_read_in_adyens_minor_units() {
        let price = |value, currency| adyen(value, currency).total().0.to_string();
        // Adyen counts ISK and CLP in hundredths, CVE and IDR in whole units.
        assert_eq!(price(100_000, "ISK"), "1000.00");
        assert_eq!(price(250_050, "CLP"), "2500.50");
        assert_eq!(price(15_000, "IDR"), "15000");
        assert_eq!(price(1_500, "CVE"), "1500");
        // Elsewhere its table is ISO 4217's, as Stripe's.
        assert_eq!(price(1_050, "EUR"), "10.50");
        assert_eq!(price(1_050, "JPY"), "1050");
        assert_eq!(price(1_050, "KWD"), "1.050");
    }
}
