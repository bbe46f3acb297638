use crate::bindings::clock::Host;
use crate::state::CallState;

impl Host for CallState {
    fn now_ms(&mut self) -> u64 {
        self.plugin.services.clock.now_ms()
    }
}
