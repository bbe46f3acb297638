//! What the shop sells and what an order is: the catalogue, the payment
//! methods offered, and a new order checked once, whether it came as JSON
//! or from the HTML form.

use rust_decimal::Decimal;
use serde::Serialize;

/// One product of the catalogue.
#[derive(Debug, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub name: &'static str,
    pub description: &'static str,
    /// Price of one, in [`CURRENCY`], as written (two decimals).
    pub unit_price: &'static str,
}

impl Product {
    /// The product with this id.
    pub fn find(id: i64) -> Option<&'static Product> {
        CATALOGUE.iter().find(|product| product.id == id)
    }

    pub fn unit_price(&self) -> Decimal {
        self.unit_price
            .parse()
            .expect("catalogue prices are decimals")
    }
}

/// Every price of the catalogue is in euros.
pub const CURRENCY: &str = "EUR";

/// The whole catalogue: small and fixed, a demo needs no product admin.
pub const CATALOGUE: &[Product] = &[
    Product {
        id: 1,
        name: "Espresso beans, 1 kg",
        description: "Dark roast, whole beans.",
        unit_price: "18.50",
    },
    Product {
        id: 2,
        name: "Ceramic mug",
        description: "Holds 350 ml, dishwasher safe.",
        unit_price: "9.90",
    },
    Product {
        id: 3,
        name: "Pour-over kettle",
        description: "Gooseneck, 1 litre, stainless steel.",
        unit_price: "42.00",
    },
    Product {
        id: 4,
        name: "Paper filters, 100",
        description: "Unbleached, size 02.",
        unit_price: "4.25",
    },
];

/// The paygate aliases the shop lets buyers pay with.
pub const PAYMENT_METHODS: &[&str] = &["stripe", "adyen", "sandbox"];

/// Largest quantity of one order.
pub const MAX_QUANTITY: i32 = 100;

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OrderStatus {
    #[serde(rename = "ORDER_PENDING")]
    Pending,
    #[serde(rename = "ORDER_FINISHED")]
    Finished,
    #[serde(rename = "ORDER_FAILED")]
    Failed,
    /// Finished, then given back whole: paygate notified `refund.succeeded`.
    #[serde(rename = "ORDER_REFUNDED")]
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "ORDER_PENDING",
            OrderStatus::Finished => "ORDER_FINISHED",
            OrderStatus::Failed => "ORDER_FAILED",
            OrderStatus::Refunded => "ORDER_REFUNDED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Finished, Self::Failed, Self::Refunded]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A field of an order as it arrived, before it is checked.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Missing,
    /// A JSON integer.
    Number(i64),
    /// A form field, or a JSON string.
    Text(&'a str),
    /// Anything else: a JSON float, array, object or boolean.
    Other,
}

impl<'a> Input<'a> {
    /// Reads a field of a JSON object; a JSON string stays text, so an
    /// integer field sent as a string is refused like any wrong type.
    pub fn json(object: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> Self {
        use serde_json::Value;
        match object.get(name) {
            None | Some(Value::Null) => Input::Missing,
            Some(Value::Number(n)) => n.as_i64().map_or(Input::Other, Input::Number),
            Some(Value::String(text)) => Input::Text(text),
            Some(_) => Input::Other,
        }
    }
}

/// One offending field and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// An order that passed every check: a known product, a quantity from 1 to
/// [`MAX_QUANTITY`] and a payment method the shop offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    product: &'static Product,
    quantity: i32,
    alias: &'static str,
}

impl NewOrder {
    /// Checks the three fields, reporting every bad one. `integers_as_text`
    /// is true for forms, where every value is text.
    pub fn parse(
        product_id: Input<'_>,
        amount: Input<'_>,
        alias: Input<'_>,
        integers_as_text: bool,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut refuse = |field, message: &str| {
            errors.push(FieldError {
                field,
                message: message.to_owned(),
            })
        };
        let product = match integer(product_id, integers_as_text) {
            Err(message) => {
                refuse("product_id", message);
                None
            }
            Ok(id) => {
                let found = Product::find(id);
                if found.is_none() {
                    refuse("product_id", "no product has this id");
                }
                found
            }
        };
        let quantity = integer(amount, integers_as_text)
            .ok()
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| (1..=MAX_QUANTITY).contains(n));
        if quantity.is_none() {
            refuse("amount", "must be a whole number from 1 to 100");
        }
        let alias = match alias {
            Input::Missing => Err("is required"),
            Input::Text(text) if text.trim().is_empty() => Err("is required"),
            Input::Text(text) => PAYMENT_METHODS
                .iter()
                .copied()
                .find(|method| *method == text.trim())
                .ok_or("must be one of: stripe, adyen, sandbox"),
            _ => Err("must be a string"),
        };
        let alias = alias.map_err(|message| refuse("alias", message)).ok();
        match (product, quantity, alias) {
            (Some(product), Some(quantity), Some(alias)) => Ok(Self {
                product,
                quantity,
                alias,
            }),
            _ => Err(errors),
        }
    }

    pub fn product(&self) -> &'static Product {
        self.product
    }

    pub fn quantity(&self) -> i32 {
        self.quantity
    }

    pub fn alias(&self) -> &'static str {
        self.alias
    }

    /// Unit price times quantity, with two decimals.
    pub fn price(&self) -> Decimal {
        let mut total = self.product.unit_price() * Decimal::from(self.quantity);
        total.rescale(2);
        total
    }
}

/// An integer field: a JSON integer, or, from a form, decimal digits.
fn integer(input: Input<'_>, from_text: bool) -> Result<i64, &'static str> {
    match input {
        Input::Missing => Err("is required"),
        Input::Number(n) => Ok(n),
        Input::Text(text) if from_text => text.trim().parse().map_err(|_| "must be a whole number"),
        _ => Err("must be a whole number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_order(body: serde_json::Value) -> Result<NewOrder, Vec<FieldError>> {
        let object = body.as_object().unwrap();
        NewOrder::parse(
            Input::json(object, "product_id"),
            Input::json(object, "amount"),
            Input::json(object, "alias"),
            false,
        )
    }

    fn refused_fields(body: serde_json::Value) -> Vec<&'static str> {
        let errors = json_order(body).unwrap_err();
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn prices_the_order_from_the_catalogue() {
        let order =
            json_order(serde_json::json!({"product_id": 2, "amount": 3, "alias": "sandbox"}));
        let order = order.unwrap();
        assert_eq!(order.price().to_string(), "29.70");
        assert_eq!((order.quantity(), order.alias()), (3, "sandbox"));
        let form = NewOrder::parse(
            Input::Text("3"),
            Input::Text(" 2 "),
            Input::Text("stripe"),
            true,
        );
        assert_eq!(form.unwrap().price().to_string(), "84.00");
        let adyen = json_order(serde_json::json!({"product_id": 1, "amount": 1, "alias": "adyen"}));
        assert_eq!(adyen.unwrap().alias(), "adyen");
    }

    #[test]
    fn names_every_bad_field() {
        use serde_json::json;
        let fields = refused_fields(json!({"product_id": 99, "amount": 0, "alias": ""}));
        assert_eq!(fields, ["product_id", "amount", "alias"]);
        for amount in [json!(101), json!(-1), json!(1.5), json!("2"), json!(null)] {
            let body = json!({"product_id": 1, "amount": amount, "alias": "stripe"});
            assert_eq!(refused_fields(body), ["amount"], "{amount}");
        }
        let body = json!({"product_id": "1", "amount": 1, "alias": "paypal"});
        assert_eq!(refused_fields(body), ["product_id", "alias"]);
        let big = json!({"product_id": 1, "amount": 4_294_967_297_i64, "alias": "stripe"});
        assert_eq!(refused_fields(big), ["amount"]);
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            OrderStatus::Pending,
            OrderStatus::Finished,
            OrderStatus::Failed,
        ] {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("PAID"), None);
    }
}
