//! The hosted payment page: plain HTML with inline CSS, no scripts and no
//! outside assets, so it works offline and in any test browser.

use super::store::Outcome;
use crate::html::escape;

const STYLE: &str = "\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:#f3f4f6;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#111827}\
main{background:#fff;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.08);\
padding:2rem;width:min(26rem,90vw)}\
.brand{margin:0 0 1rem;font-size:.8rem;letter-spacing:.08em;text-transform:uppercase;color:#6b7280}\
h1{margin:0 0 1rem;font-size:1.6rem}\
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem;margin:0 0 1.5rem}\
dt{color:#6b7280}dd{margin:0;word-break:break-all}\
.actions{display:flex;gap:.75rem}.actions form{flex:1}\
button{width:100%;padding:.75rem;border:0;border-radius:8px;font:inherit;font-weight:600;cursor:pointer}\
#pay{background:#4f46e5;color:#fff}#decline{background:#e5e7eb;color:#111827}\
.ok{color:#047857}.failed{color:#b91c1c}\
.note{margin:1.5rem 0 0;font-size:.85rem;color:#6b7280}";

/// What the page shows of one payment.
pub(crate) struct View<'a> {
    /// The provider's id, also the last segment of the page's URL.
    pub id: &'a str,
    /// The total with its currency, e.g. `10.00 EUR`.
    pub total: String,
    /// Label and value rows under the total.
    pub details: Vec<(&'static str, String)>,
    pub outcome: Outcome,
    /// The last webhook delivery attempt, in words.
    pub delivery: Option<&'a str>,
}

/// The page of a payment: buttons while it is pending, its outcome after.
pub(crate) fn payment(view: &View<'_>) -> String {
    let total = escape(&view.total);
    let mut body = String::new();
    match view.outcome {
        Outcome::Pending => {
            body.push_str(&format!("<h1>Pay <span id=\"total\">{total}</span></h1>"))
        }
        Outcome::Finished => {
            body.push_str("<h1 id=\"outcome\" class=\"ok\">Payment completed</h1>");
        }
        Outcome::Failed => {
            body.push_str("<h1 id=\"outcome\" class=\"failed\">Payment declined</h1>");
        }
    }
    body.push_str("<dl>");
    if view.outcome != Outcome::Pending {
        body.push_str(&format!("<dt>Total</dt><dd>{total}</dd>"));
    }
    for (label, value) in &view.details {
        body.push_str(&format!("<dt>{label}</dt><dd>{}</dd>", escape(value)));
    }
    body.push_str("</dl>");
    if view.outcome == Outcome::Pending {
        // Relative actions resolve against /pay/, so the page also works
        // behind a proxy that serves the sandbox under a path prefix.
        let id = escape(view.id);
        body.push_str(&format!(
            "<div class=\"actions\">\
             <form method=\"post\" action=\"{id}/pay\"><button id=\"pay\" type=\"submit\">Pay {total}</button></form>\
             <form method=\"post\" action=\"{id}/decline\"><button id=\"decline\" type=\"submit\">Decline</button></form>\
             </div>"
        ));
    } else {
        let delivery = view.delivery.unwrap_or("sending");
        body.push_str(&format!(
            "<p id=\"delivery\" class=\"note\">Webhook to the gateway: {}</p>",
            escape(delivery)
        ));
    }
    body.push_str("<p class=\"note\">Sandbox provider: no money moves.</p>");
    layout("Sandbox payment", &body)
}

/// The page for an id the sandbox does not know.
pub(crate) fn not_found(id: &str) -> String {
    let body = format!(
        "<h1 class=\"failed\">Payment not found</h1>\
         <p>The sandbox has no payment <code>{}</code>. It keeps payments in memory, \
         so a restart forgets them.</p>",
        escape(id)
    );
    layout("Payment not found", &body)
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main><p class=\"brand\">paygate sandbox</p>{body}</main></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_the_merchant_sent() {
        let view = View {
            id: "pl_1",
            total: "10.00 EUR".into(),
            details: vec![("Order", "<script>alert('x')</script>".into())],
            outcome: Outcome::Pending,
            delivery: None,
        };
        let page = payment(&view);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)"));
        assert!(page.contains("id=\"pay\"") && page.contains("id=\"decline\""));
        let settled = View {
            outcome: Outcome::Finished,
            ..view
        };
        assert!(!payment(&settled).contains("id=\"pay\""));
        assert!(not_found("<b>").contains("&lt;b&gt;"));
    }
}
