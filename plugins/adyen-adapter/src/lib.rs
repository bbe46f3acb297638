//! paygate provider adapter for Adyen's Checkout API v71; WIT 0.2.0.
//!
//! `create-payment` opens a redirect payment (`POST /v71/payments`) and
//! sends the buyer to the `action.url` Adyen answers with; `refund` asks for
//! a refund of it (`POST /v71/payments/{pspReference}/refunds`). Adyen can
//! be asked about neither later: outcomes arrive by webhook (the
//! `adyen-verifier` plugin), so `payment-status` and `refund-status` answer
//! `pending` without a request, and a payment whose webhook never comes
//! expires.
//!
//! Settings: `base-url`, `merchant-account` and `payment-method` (the
//! redirect method's `paymentMethod.type`, e.g. `ideal`), all required;
//! `return-url`, used when the payment names none. Secret: `api-key`, sent
//! as `X-API-Key`.
//!
//! `amount` writes prices in Adyen's minor units, `checkout` builds and
//! reads the payment exchange and `refunds` the refund's; they are
//! free of WIT imports, so their unit tests run natively. This file reads
//! the settings and sends the requests. `fixtures/` holds recorded
//! exchanges for `paygate plugin test`; its README gives the command.

mod amount;
mod checkout;
mod refunds;

wit_bindgen::generate!({
    path: "../../wit",
    world: "provider-adapter",
    // The host interfaces are 0.1.0's, from wit/deps/.
    generate_all,
});
guest_common::provider_glue!(
    crate::exports::paygate::plugins0_2_0::provider,
    crate::paygate::plugins0_1_0::http
);

use checkout::Checkout;
use exports::paygate::plugins0_2_0::provider::{
    Guest, PaymentRequest, PaymentSession, PaymentState, ProviderError, RefundRequest,
    RefundSession, RefundState,
};
use guest_common::provider::Failure;
use guest_common::{settings, url};
use paygate::plugins0_1_0::{config, http};

/// The exported adapter.
struct AdyenAdapter;

impl Guest for AdyenAdapter {
    fn create_payment(request: PaymentRequest) -> Result<PaymentSession, ProviderError> {
        let account = Account::load()?;
        let payment_method = setting("payment-method")?;
        // Adyen sends the buyer back here whatever the outcome, so without
        // one the payment cannot be opened: the operator must name one.
        let non_empty = |url: &String| !url.is_empty();
        let return_url = request
            .return_url
            .clone()
            .filter(non_empty)
            .or_else(|| config::get("return-url").filter(non_empty))
            .ok_or_else(|| {
                Failure::Misconfigured(
                    "the payment names no return URL and setting `return-url` is not set".into(),
                )
            })?;
        let checkout = Checkout {
            merchant_account: &account.merchant_account,
            payment_method: &payment_method,
            return_url: &return_url,
        };
        let body = checkout::payment_body(&request, &checkout)?;
        let response = account.post("v71/payments", &request.idempotency_key, body)?;
        Ok(checkout::parse_payment(
            response.status,
            &response.body,
            &return_url,
        )?)
    }

    fn payment_status(_reference: String) -> Result<PaymentState, ProviderError> {
        // Checkout v71 has no lookup of a payment; only its webhook moves it.
        Ok(PaymentState::Pending)
    }

    fn refund(request: RefundRequest) -> Result<RefundSession, ProviderError> {
        let account = Account::load()?;
        let path = refunds::path(&request.payment_reference)?;
        let body = refunds::refund_body(&request, &account.merchant_account)?;
        let response = account.post(&path, &request.idempotency_key, body)?;
        Ok(refunds::parse_refund(response.status, &response.body)?)
    }

    fn refund_status(_reference: String) -> Result<RefundState, ProviderError> {
        // Adyen confirms a refund by webhook only.
        Ok(RefundState::Pending)
    }
}

/// The Adyen account the alias speaks for. Deliberately not `Debug`: it
/// holds the API key.
struct Account {
    base_url: String,
    merchant_account: String,
    api_key: String,
}

impl Account {
    /// Reads the settings and the secret every request needs, before
    /// anything is sent.
    fn load() -> Result<Self, Failure> {
        Ok(Self {
            base_url: setting("base-url")?,
            merchant_account: setting("merchant-account")?,
            api_key: settings::required("secret", "api-key", config::secret("api-key"))
                .map_err(Failure::Misconfigured)?,
        })
    }

    /// `POST` of a JSON body to `{base-url}/{path}` under an idempotency
    /// key, which Adyen honours on both endpoints.
    fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        body: Vec<u8>,
    ) -> Result<http::Response, Failure> {
        Ok(http::send(&http::Request {
            method: http::Method::Post,
            url: url::join(&self.base_url, path),
            headers: vec![
                ("X-API-Key".into(), self.api_key.clone()),
                (
                    "Idempotency-Key".into(),
                    checkout::idempotency_key(idempotency_key),
                ),
                ("Content-Type".into(), "application/json".into()),
            ],
            body,
            timeout_ms: None,
        })?)
    }
}

/// A required, non-empty setting.
fn setting(key: &str) -> Result<String, Failure> {
    settings::required("setting", key, config::get(key)).map_err(Failure::Misconfigured)
}

export!(AdyenAdapter);
