//! Payments: creation through a provider plugin, listing, showing and the
//! timeline (the payments database).

pub mod create;
pub mod domain;
pub mod idempotency;
pub mod listing;
pub mod outcome;
pub mod reads;
pub mod reconcile;
pub mod refunds;
pub mod store;
pub mod webhook;

pub use domain::{Alias, Currency, IdempotencyKey, Metadata, Money, PaymentStatus, RedirectUrl};
pub use listing::{Cursor, FILTER_STATUSES, ListFilter};
pub use outcome::{CreateError, Created, Opened, Outcome, Refused};
pub use store::{Payment, PaymentStore, TimelineEvent};
