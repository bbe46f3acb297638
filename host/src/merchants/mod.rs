//! Merchants, their API keys, their subscriptions and their own provider
//! accounts (the merchants database). Other modules call these functions,
//! never this module's SQL.

mod accounts;
mod auth;
mod keys;
mod settings;
mod store;

pub use accounts::{ACCOUNT_CACHE_TTL, AccountView, ProviderAccounts};
pub use auth::{AUTH_CACHE_TTL, Merchant, Merchants, Scope};
pub use keys::{ApiKey, KeyHash, generate_key, generate_secret};
pub use settings::{
    MAX_GRACE, MerchantRecord, RotatedKeys, RotatedSecret, Settings, SettingsChange,
    SubscriptionUse, UrlPolicy, WEBHOOK_SECRET_GRACE, check_callback_url,
};
pub use store::{
    Charge, CreatedMerchant, MerchantStore, NewMerchant, NotificationTarget, QuotaError, Take,
};
