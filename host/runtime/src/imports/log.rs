use crate::bindings::log::{Host, Level};
use crate::state::CallState;

/// Longest message kept; the rest is cut off.
const MAX_MESSAGE_BYTES: usize = 2048;

impl Host for CallState {
    fn write(&mut self, level: Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > self.plugin.limits.log_lines_per_call {
            if self.log_lines == self.plugin.limits.log_lines_per_call + 1 {
                tracing::warn!(plugin = %self.plugin.name, request_id = %self.request_id, "plugin log budget spent; dropping further lines of this call");
            }
            return;
        }
        let mut end = message.len().min(MAX_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message[..end];
        let (plugin, version, request_id) =
            (&self.plugin.name, &self.plugin.version, &*self.request_id);
        match level {
            Level::Trace => {
                tracing::trace!(target: "plugin", %plugin, %version, %request_id, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "plugin", %plugin, %version, %request_id, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "plugin", %plugin, %version, %request_id, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "plugin", %plugin, %version, %request_id, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "plugin", %plugin, %version, %request_id, "{message}")
            }
        }
    }
}
