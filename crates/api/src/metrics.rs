//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// One sample; samples of one name with different labels share a family.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// `(label, value)` pairs.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Metric {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Metric {
        Metric { name, help, kind: MetricKind::Counter, labels: Vec::new(), value: value as f64 }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Metric {
        Metric { name, help, kind: MetricKind::Gauge, labels: Vec::new(), value }
    }

    pub fn with_label(mut self, label: &'static str, value: impl Into<String>) -> Metric {
        self.labels.push((label, value.into()));
        self
    }
}

/// Renders metrics, writing `# HELP` and `# TYPE` once per name.
pub fn render(metrics: &[Metric]) -> String {
    let mut out = String::new();
    let mut last_name = "";
    for metric in metrics {
        if metric.name != last_name {
            let kind = match metric.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            writeln!(out, "# HELP {} {}", metric.name, metric.help).expect("writing to a String");
            writeln!(out, "# TYPE {} {kind}", metric.name).expect("writing to a String");
            last_name = metric.name;
        }
        out.push_str(metric.name);
        if !metric.labels.is_empty() {
            let labels: Vec<String> = metric
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            write!(out, "{{{}}}", labels.join(",")).expect("writing to a String");
        }
        writeln!(out, " {}", metric.value).expect("writing to a String");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_labels() {
        let text = render(&[
            Metric::gauge("caravan_peers", "Connected peers.", 3.0),
            Metric::counter("caravan_rejected_total", "Refused records.", 2).with_label("reason", "bad_signature"),
            Metric::counter("caravan_rejected_total", "Refused records.", 1).with_label("reason", "say \"hi\""),
        ]);
        assert_eq!(
            text,
            "# HELP caravan_peers Connected peers.\n# TYPE caravan_peers gauge\ncaravan_peers 3\n\
             # HELP caravan_rejected_total Refused records.\n# TYPE caravan_rejected_total counter\n\
             caravan_rejected_total{reason=\"bad_signature\"} 2\ncaravan_rejected_total{reason=\"say \\\"hi\\\"\"} 1\n"
        );
    }
}
