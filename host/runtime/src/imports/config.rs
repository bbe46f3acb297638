use crate::bindings::config::Host;
use crate::state::CallState;

impl Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.plugin.config.get(&key).cloned()
    }

    fn secret(&mut self, key: String) -> Option<String> {
        self.plugin.secrets.get(&key).map(|s| s.expose().to_owned())
    }
}
