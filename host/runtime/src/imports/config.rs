//! `config`: the plugin's settings and secrets from its spec, each replaced
//! by the merchant's own (its provider account) during that merchant's calls.

use crate::bindings::config::Host;
use crate::state::CallState;

impl Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        let own = self.account.as_ref().and_then(|a| a.config.get(&key));
        own.or_else(|| self.plugin.config.get(&key)).cloned()
    }

    fn secret(&mut self, key: String) -> Option<String> {
        let own = self.account.as_ref().and_then(|a| a.secrets.get(&key));
        own.or_else(|| self.plugin.secrets.get(&key))
            .map(|s| s.expose().to_owned())
    }
}
