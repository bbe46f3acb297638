use crate::bindings::counters::{CounterError, Host, Window};
use crate::state::CallState;

const MAX_KEY_BYTES: usize = 200;

impl CallState {
    /// The plugin's own namespace: plugins never share counters.
    fn counter_key(&self, key: &str) -> Result<String, CounterError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(CounterError::InvalidKey(format!(
                "counter keys must be 1 to {MAX_KEY_BYTES} bytes"
            )));
        }
        Ok(format!("{}:{key}", self.plugin.name))
    }

    /// The guest's error for a store that cannot answer, noted for the host.
    fn unavailable(&mut self, e: crate::counters::CounterError) -> CounterError {
        self.counters_unavailable = true;
        CounterError::Unavailable(e.0)
    }
}

impl Host for CallState {
    #[tracing::instrument(
        name = "host_import",
        level = "debug",
        skip_all,
        fields(import = "counters.increment")
    )]
    async fn increment(
        &mut self,
        key: String,
        delta: i64,
        window_ms: u64,
    ) -> Result<Window, CounterError> {
        let key = self.counter_key(&key)?;
        let counted = self
            .plugin
            .services
            .counters
            .increment(&key, delta, window_ms)
            .await;
        let (value, reset_ms) = counted.map_err(|e| self.unavailable(e))?;
        Ok(Window { value, reset_ms })
    }

    #[tracing::instrument(
        name = "host_import",
        level = "debug",
        skip_all,
        fields(import = "counters.get")
    )]
    async fn get(&mut self, key: String) -> Result<Option<i64>, CounterError> {
        let key = self.counter_key(&key)?;
        let value = self.plugin.services.counters.get(&key).await;
        value.map_err(|e| self.unavailable(e))
    }

    #[tracing::instrument(
        name = "host_import",
        level = "debug",
        skip_all,
        fields(import = "counters.compare_and_swap")
    )]
    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<i64>,
        new: i64,
        ttl_ms: u64,
    ) -> Result<bool, CounterError> {
        let key = self.counter_key(&key)?;
        let swapped = self
            .plugin
            .services
            .counters
            .compare_and_swap(&key, expected, new, ttl_ms)
            .await;
        swapped.map_err(|e| self.unavailable(e))
    }
}
