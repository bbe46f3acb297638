//! The shop's HTML: the products with an order form each, and the orders
//! with their state. Plain forms, inline CSS, no scripts and no outside
//! assets, so it works offline and in any test browser.

use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ShopError;
use super::order::{
    CATALOGUE, CURRENCY, Input, MAX_QUANTITY, NewOrder, OrderStatus, PAYMENT_METHODS,
};
use super::store::Order;
use super::{ShopState, place_order, refund_order};
use crate::html::{escape, page};
use paygate::OrderId;

const STYLE: &str = "\
body{margin:0;background:#f3f4f6;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#111827}\
header{background:#111827;color:#fff;padding:1rem 2rem;display:flex;gap:2rem;align-items:baseline}\
header a{color:#e5e7eb;text-decoration:none}header .brand{font-weight:700;color:#fff}\
main{max-width:64rem;margin:2rem auto;padding:0 1rem}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:1rem}\
.card{background:#fff;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.06);padding:1.25rem;\
display:flex;flex-direction:column}.card form{margin-top:auto}\
.card h2{margin:0 0 .25rem;font-size:1.1rem}.desc{margin:0 0 .75rem;color:#6b7280}\
.price{font-size:1.3rem;font-weight:600;margin:0 0 .75rem}\
label{display:block;margin:0 0 .5rem;font-size:.9rem;color:#374151}\
input,select{font:inherit;padding:.3rem;width:100%;box-sizing:border-box}\
button{width:100%;margin-top:.5rem;padding:.6rem;border:0;border-radius:8px;background:#4f46e5;color:#fff;font:inherit;font-weight:600;cursor:pointer}\
table{width:100%;border-collapse:collapse;background:#fff;border-radius:12px;overflow:hidden}\
th,td{padding:.6rem .8rem;text-align:left;border-bottom:1px solid #e5e7eb}th{background:#f9fafb;font-size:.85rem;color:#6b7280}\
.status{font-weight:600;font-size:.85rem}.ORDER_PENDING{color:#b45309}.ORDER_FINISHED{color:#047857}.ORDER_FAILED{color:#b91c1c}.ORDER_REFUNDED{color:#4b5563}\
td form button{width:auto;margin:0;padding:.3rem .8rem;background:#6b7280}\
.note{color:#6b7280;font-size:.9rem}";

/// `GET /`: every product with a quantity, a payment method and a button.
pub(super) async fn products() -> Response {
    let methods: String = PAYMENT_METHODS
        .iter()
        .map(|m| format!("<option value=\"{0}\">{0}</option>", escape(m)))
        .collect();
    let mut cards = String::new();
    for product in CATALOGUE {
        cards.push_str(&format!(
            "<article class=\"card\"><h2>{name}</h2><p class=\"desc\">{description}</p>\
             <p class=\"price\">{price} {CURRENCY}</p>\
             <form method=\"post\" action=\"orders\">\
             <input type=\"hidden\" name=\"product_id\" value=\"{id}\">\
             <label>Quantity <input type=\"number\" name=\"amount\" value=\"1\" min=\"1\" max=\"{MAX_QUANTITY}\" required></label>\
             <label>Pay with <select name=\"alias\">{methods}</select></label>\
             <button id=\"order-{id}\" type=\"submit\">Order</button></form></article>",
            id = product.id,
            name = escape(product.name),
            description = escape(product.description),
            price = escape(product.unit_price),
        ));
    }
    let body = format!(
        "<h1>Products</h1><div class=\"grid\">{cards}</div>\
         <p class=\"note\">Ordering opens paygate's payment page; the order is settled when \
         paygate's signed notification reaches this shop.</p>"
    );
    page(StatusCode::OK, layout("Demo shop", &body, false, ""))
}

/// `GET /orders`: the latest orders, refreshed every two seconds so a
/// notification's effect shows without a click.
pub(super) async fn orders(State(state): State<ShopState>) -> Response {
    match state.inner.orders.list().await {
        Ok(orders) => page(
            StatusCode::OK,
            layout("Orders", &orders_table(&orders, ""), true, ""),
        ),
        Err(error) => problem(&ShopError::from(error), ""),
    }
}

/// `GET /orders/{id}`: one order, where paygate's payment page sends the
/// buyer back; refreshed every two seconds until the notification settles
/// it.
pub(super) async fn order_page(
    State(state): State<ShopState>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    // One level down: links lead up to the shop's root.
    let root = "../";
    let Ok(Path(id)) = id else {
        return problem(&ShopError::NotFound, root);
    };
    match state.inner.orders.get(OrderId::new(id)).await {
        Ok(Some(order)) => {
            let title = format!("Order {}", order.order_id);
            let refresh = order.status == OrderStatus::Pending;
            let body = orders_table(&[order], root);
            page(StatusCode::OK, layout(&title, &body, refresh, root))
        }
        Ok(None) => problem(&ShopError::NotFound, root),
        Err(error) => problem(&ShopError::from(error), root),
    }
}

/// `POST /orders/{id}/refund` (an order's Refund button): asks paygate for
/// the refund and sends the browser back to the orders, where the order
/// turns refunded when paygate's notification comes.
pub(super) async fn refund_form(
    State(state): State<ShopState>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let root = "../../";
    let Ok(Path(id)) = id else {
        return problem(&ShopError::NotFound, root);
    };
    match refund_order(&state, OrderId::new(id)).await {
        // Back to /orders from /orders/{id}/refund, wherever the shop is mounted.
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "../../orders")]).into_response(),
        Err(error) => problem(&error, root),
    }
}

/// `POST /orders` (a product card's form): places the order like the API
/// does and sends the browser on to the payment page.
pub(super) async fn order_form(
    State(state): State<ShopState>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(fields)) = form else {
        return problem(
            &ShopError::Malformed("the order form could not be read".into()),
            "",
        );
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map_or(Input::Missing, |(_, value)| Input::Text(value))
    };
    let new = match NewOrder::parse(field("product_id"), field("amount"), field("alias"), true) {
        Ok(new) => new,
        Err(fields) => return problem(&ShopError::InvalidFields(fields), ""),
    };
    match place_order(&state, new).await {
        Ok(order) => {
            let location = order
                .payment_url
                .as_deref()
                .and_then(|url| HeaderValue::from_str(url).ok());
            match location {
                Some(location) => {
                    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
                }
                // paygate answered with a URL no browser can be sent to.
                None => page(
                    StatusCode::OK,
                    layout("Orders", &orders_table(&[order], ""), false, ""),
                ),
            }
        }
        Err(error) => problem(&error, ""),
    }
}

/// The orders as a table; `root` leads from the page to the shop's root
/// (`""`, or `"../"` one level down).
fn orders_table(orders: &[Order], root: &str) -> String {
    if orders.is_empty() {
        return format!(
            "<h1>Orders</h1><p class=\"note\">No orders yet. <a href=\"{root}./\">Order something.</a></p>"
        );
    }
    let mut rows = String::new();
    for order in orders {
        let status = order.status.as_str();
        let payment = match (&order.payment_id, &order.payment_url) {
            (Some(id), Some(url)) if order.status == OrderStatus::Pending && is_web(url) => {
                format!("{id} · <a href=\"{}\">pay</a>", escape(url))
            }
            (Some(id), _) => id.to_string(),
            (None, _) => "—".to_owned(),
        };
        let action = match (order.status, order.refund_id) {
            (OrderStatus::Finished, None) => format!(
                "<form method=\"post\" action=\"{root}orders/{id}/refund\">\
                 <button id=\"refund-{id}\" type=\"submit\">Refund</button></form>",
                id = order.order_id
            ),
            (OrderStatus::Finished, Some(refund)) => format!("refund {refund} asked"),
            _ => String::new(),
        };
        rows.push_str(&format!(
            "<tr><td>{id}</td><td>{product}</td><td>{quantity}</td><td>{price} {currency}</td>\
             <td>{alias}</td><td id=\"order-{id}-status\" class=\"status {status}\">{status}</td>\
             <td>{payment}</td><td>{action}</td></tr>",
            id = order.order_id,
            product = escape(order.product),
            quantity = order.quantity,
            price = order.price,
            currency = escape(&order.currency),
            alias = escape(&order.alias),
        ));
    }
    format!(
        "<h1>Orders</h1><table><thead><tr><th>Order</th><th>Product</th><th>Quantity</th>\
         <th>Price</th><th>Pay with</th><th>Status</th><th>Payment</th><th></th></tr></thead>\
         <tbody>{rows}</tbody></table>\
         <p class=\"note\">This page refreshes every 2 seconds.</p>"
    )
}

/// A refused or failed order as a page, with the API's status; `root` as
/// for [`orders_table`].
fn problem(error: &ShopError, root: &str) -> Response {
    error.log();
    let mut details = String::new();
    if let ShopError::InvalidFields(fields) = error {
        for field in fields {
            details.push_str(&format!(
                "<li><code>{}</code> {}</li>",
                escape(field.field),
                escape(&field.message)
            ));
        }
    }
    if let ShopError::PaymentFailed { refusal, .. } = error {
        details.push_str(&format!(
            "<li>paygate: <code>{}</code></li>",
            escape(&refusal.code)
        ));
    }
    let body = format!(
        "<h1>Order not placed</h1><p>{}</p><ul>{details}</ul>\
         <p><a href=\"{root}./\">Back to the products</a> · <a href=\"{root}orders\">Orders</a></p>",
        escape(&error.message())
    );
    page(
        error.status(),
        layout("Order not placed", &body, false, root),
    )
}

fn is_web(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn layout(title: &str, body: &str, refresh: bool, root: &str) -> String {
    let refresh = if refresh {
        "<meta http-equiv=\"refresh\" content=\"2\">"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{refresh}\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><header><a class=\"brand\" href=\"{root}./\">paygate demo shop</a>\
         <a href=\"{root}./\">Products</a><a href=\"{root}orders\">Orders</a></header>\
         <main>{body}</main></body></html>",
        title = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use paygate::{OrderId, PaymentId};

    fn order(alias: &str, url: &str) -> Order {
        let now = chrono::Utc::now();
        Order {
            order_id: OrderId::new(7),
            product_id: 1,
            product: "Mug",
            quantity: 2,
            price: "19.80".parse().unwrap(),
            currency: "EUR".into(),
            alias: alias.into(),
            status: OrderStatus::Pending,
            payment_id: Some(PaymentId::new(42)),
            payment_url: Some(url.into()),
            refund_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn orders_are_escaped_and_addressable() {
        let table = orders_table(&[order("<script>", "http://pay.test/x?a=1&b=\"2\"")], "");
        assert!(!table.contains("<script>"));
        assert!(table.contains("&lt;script&gt;"));
        assert!(table.contains("href=\"http://pay.test/x?a=1&amp;b=&quot;2&quot;\""));
        assert!(
            table.contains("id=\"order-7-status\" class=\"status ORDER_PENDING\">ORDER_PENDING<")
        );
        let unsafe_link = orders_table(&[order("stripe", "javascript:alert(1)")], "");
        assert!(!unsafe_link.contains("javascript:"));
    }
}
