//! Resource limits applied to every plugin call.

use std::time::Duration;

use paygate_plugin_registry::LimitsSpec;

/// The largest memory any plugin may be given, and so the pooling
/// allocator's slot size.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// Limits of one plugin, resolved from its spec and the host's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub fuel: Option<u64>,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
    pub http_timeout: Duration,
    pub http_max_response_bytes: usize,
    /// Log lines one call may write before the rest are dropped.
    pub log_lines_per_call: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 32 << 20,
            timeout: Duration::from_secs(10),
            fuel: None,
            max_input_bytes: 256 << 10,
            max_output_bytes: 256 << 10,
            http_timeout: Duration::from_secs(8),
            http_max_response_bytes: 1 << 20,
            log_lines_per_call: 100,
        }
    }
}

impl Limits {
    /// Applies the spec's overrides to the defaults; memory is clamped to
    /// [`MAX_MEMORY_BYTES`] and the HTTP timeout to the call's timeout.
    pub fn from_spec(spec: &LimitsSpec) -> Self {
        let d = Self::default();
        let kib = |v: Option<u32>, default: usize| v.map_or(default, |k| k as usize * 1024);
        let ms = |v: Option<u32>, default: Duration| {
            v.map_or(default, |m| Duration::from_millis(m.into()))
        };
        let timeout = ms(spec.timeout_ms, d.timeout);
        Self {
            memory_bytes: spec
                .memory_mib
                .map_or(d.memory_bytes, |m| (m as usize) << 20)
                .min(MAX_MEMORY_BYTES),
            timeout,
            fuel: spec.fuel,
            max_input_bytes: kib(spec.max_input_kib, d.max_input_bytes),
            max_output_bytes: kib(spec.max_output_kib, d.max_output_bytes),
            http_timeout: ms(spec.http_timeout_ms, d.http_timeout).min(timeout),
            http_max_response_bytes: kib(spec.http_max_response_kib, d.http_max_response_bytes),
            log_lines_per_call: d.log_lines_per_call,
        }
    }
}

/// Caps a store's linear memory and remembers whether the cap was hit, so a
/// failed call can be reported as a memory-limit breach rather than a trap.
/// It also keeps the most linear memory the store held at once, for the
/// harness and metrics.
pub struct MemoryLimiter {
    max_bytes: usize,
    pub(crate) hit: bool,
    /// Linear memory of all the store's memories now.
    total_bytes: usize,
    /// The largest `total_bytes` seen.
    pub(crate) peak_bytes: usize,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            hit: false,
            total_bytes: 0,
            peak_bytes: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            // Trap now instead of letting the guest's allocator abort later
            // with a less precise message.
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (wanted {desired})",
                self.max_bytes
            );
        }
        // wasmtime asks here for a memory's initial size too (from 0), so
        // the sum covers every memory the instance ever had.
        self.total_bytes += desired.saturating_sub(current);
        self.peak_bytes = self.peak_bytes.max(self.total_bytes);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_overrides_defaults_and_is_clamped() {
        let limits = Limits::from_spec(&LimitsSpec {
            memory_mib: Some(100_000),
            timeout_ms: Some(50),
            http_timeout_ms: Some(5_000),
            max_output_kib: Some(4),
            ..Default::default()
        });
        assert_eq!(limits.memory_bytes, MAX_MEMORY_BYTES);
        assert_eq!(limits.timeout, Duration::from_millis(50));
        assert_eq!(limits.http_timeout, Duration::from_millis(50));
        assert_eq!(limits.max_output_bytes, 4096);
        assert_eq!(limits.max_input_bytes, Limits::default().max_input_bytes);
    }
}
