//! `/metrics` in the Prometheus text format (0.0.4): request counts by route
//! and status, tokens, time to first token and decode time histograms, and,
//! read from the model manager at scrape time, queue depth and loaded bytes
//! per model. Plain atomics; labels are bounded (routes are the fixed set).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The route label for a request path: one of the served routes, else `other`.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/api/ps" => "/api/ps",
        "/v1/models" => "/v1/models",
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/embeddings" => "/v1/embeddings",
        "/v1/audio/transcriptions" => "/v1/audio/transcriptions",
        "/v1/audio/translations" => "/v1/audio/translations",
        p if p.starts_with("/v1/models/") && p.ends_with("/unload") => "/v1/models/{id}/unload",
        p if p.starts_with("/v1/models/") => "/v1/models/{id}",
        _ => "other",
    }
}

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in microseconds (integer, so it can be atomic).
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if s <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_us.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

const TTFT_BOUNDS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const DECODE_BOUNDS: &[f64] = &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    generations: AtomicU64,
    ttft: Histogram,
    decode: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            generations: AtomicU64::new(0),
            ttft: Histogram::new(TTFT_BOUNDS),
            decode: Histogram::new(DECODE_BOUNDS),
        }
    }
}

/// One loaded model as a scrape sees it.
pub struct ModelGauge {
    pub id: String,
    pub queued: usize,
    pub bytes: u64,
}

impl Metrics {
    pub fn request(&self, path: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route_label(path), status)).or_insert(0) += 1;
        }
    }

    /// A finished generation: its tokens, time to first token and decode time.
    pub fn generation(
        &self,
        prompt: usize,
        completion: usize,
        ttft: Option<Duration>,
        decode: Duration,
    ) {
        self.prompt_tokens
            .fetch_add(prompt as u64, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion as u64, Ordering::Relaxed);
        self.generations.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = ttft {
            self.ttft.observe(t);
        }
        self.decode.observe(decode);
    }

    pub fn render(&self, models: &[ModelGauge]) -> String {
        let mut out = String::new();
        out.push_str("# HELP tanto_requests_total HTTP requests by route and status.\n# TYPE tanto_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "tanto_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        for (name, help, v) in [
            (
                "tanto_prompt_tokens_total",
                "Prompt tokens of finished generations.",
                &self.prompt_tokens,
            ),
            (
                "tanto_completion_tokens_total",
                "Generated tokens of finished generations.",
                &self.completion_tokens,
            ),
            (
                "tanto_generations_total",
                "Finished generations.",
                &self.generations,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.ttft.render(
            &mut out,
            "tanto_time_to_first_token_seconds",
            "Time from request to the first generated token.",
        );
        self.decode.render(
            &mut out,
            "tanto_decode_seconds",
            "Decode time per generation.",
        );
        out.push_str("# HELP tanto_queue_depth Requests queued or running per loaded model.\n# TYPE tanto_queue_depth gauge\n");
        for m in models {
            let _ = writeln!(
                out,
                "tanto_queue_depth{{model=\"{}\"}} {}",
                escape(&m.id),
                m.queued
            );
        }
        out.push_str("# HELP tanto_loaded_bytes Memory the policy counts for each loaded model (weights + KV cache).\n# TYPE tanto_loaded_bytes gauge\n");
        for m in models {
            let _ = writeln!(
                out,
                "tanto_loaded_bytes{{model=\"{}\"}} {}",
                escape(&m.id),
                m.bytes
            );
        }
        let _ = writeln!(
            out,
            "# HELP tanto_loaded_models Models loaded.\n# TYPE tanto_loaded_models gauge\ntanto_loaded_models {}",
            models.len()
        );
        out
    }
}

/// Label values: backslash, quote and newline escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let m = Metrics::default();
        m.request("/v1/chat/completions", 200);
        m.request("/v1/chat/completions", 200);
        m.request("/v1/models/a/b", 404);
        m.request("/etc/passwd", 404);
        m.generation(
            10,
            5,
            Some(Duration::from_millis(300)),
            Duration::from_secs(2),
        );
        let out = m.render(&[ModelGauge {
            id: "org/m\"x".into(),
            queued: 2,
            bytes: 1000,
        }]);
        assert!(
            out.contains("tanto_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2")
        );
        assert!(out.contains("tanto_requests_total{route=\"/v1/models/{id}\",status=\"404\"} 1"));
        assert!(out.contains("tanto_requests_total{route=\"other\",status=\"404\"} 1"));
        assert!(out.contains("tanto_completion_tokens_total 5"));
        assert!(out.contains("tanto_time_to_first_token_seconds_bucket{le=\"0.25\"} 0"));
        assert!(out.contains("tanto_time_to_first_token_seconds_bucket{le=\"0.5\"} 1"));
        assert!(out.contains("tanto_time_to_first_token_seconds_count 1"));
        assert!(out.contains("tanto_decode_seconds_sum 2"));
        assert!(out.contains("tanto_queue_depth{model=\"org/m\\\"x\"} 2"));
        assert!(out.contains("tanto_loaded_models 1"));
        // Every sample line is `name{labels} value` or `name value`.
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.rsplit_once(' ').unwrap().1.parse::<f64>().is_ok(), "{l}");
        }
    }
}
