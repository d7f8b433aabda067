//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    Counter(f64),
    Gauge(f64),
    /// `buckets` are `(upper bound, observations at or below it)`,
    /// ascending; the `+Inf` bucket is `count`.
    Histogram {
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    },
}

/// One sample; samples of one name with different labels share a family.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    /// `(label, value)` pairs.
    pub labels: Vec<(&'static str, String)>,
    pub sample: Sample,
}

impl Metric {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Metric {
        Metric { name, help, labels: Vec::new(), sample: Sample::Counter(value as f64) }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Metric {
        Metric { name, help, labels: Vec::new(), sample: Sample::Gauge(value) }
    }

    pub fn histogram(name: &'static str, help: &'static str, buckets: Vec<(f64, u64)>, sum: f64, count: u64) -> Metric {
        Metric { name, help, labels: Vec::new(), sample: Sample::Histogram { buckets, sum, count } }
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
            let kind = match metric.sample {
                Sample::Counter(_) => "counter",
                Sample::Gauge(_) => "gauge",
                Sample::Histogram { .. } => "histogram",
            };
            writeln!(out, "# HELP {} {}", metric.name, metric.help).expect("writing to a String");
            writeln!(out, "# TYPE {} {kind}", metric.name).expect("writing to a String");
            last_name = metric.name;
        }
        let labels = |extra: Option<(&str, String)>| -> String {
            let pairs: Vec<String> = metric
                .labels
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .chain(extra)
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            if pairs.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", pairs.join(","))
            }
        };
        let name = metric.name;
        match &metric.sample {
            Sample::Counter(value) | Sample::Gauge(value) => {
                writeln!(out, "{name}{} {value}", labels(None)).expect("writing to a String");
            }
            Sample::Histogram { buckets, sum, count } => {
                for (bound, total) in buckets {
                    let le = labels(Some(("le", bound.to_string())));
                    writeln!(out, "{name}_bucket{le} {total}").expect("writing to a String");
                }
                let le = labels(Some(("le", "+Inf".to_owned())));
                writeln!(out, "{name}_bucket{le} {count}").expect("writing to a String");
                writeln!(out, "{name}_sum{} {sum}", labels(None)).expect("writing to a String");
                writeln!(out, "{name}_count{} {count}", labels(None)).expect("writing to a String");
            }
        }
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

    #[test]
    fn histograms_list_cumulative_buckets_sum_and_count() {
        let text = render(&[Metric::histogram("lag_seconds", "Lag.", vec![(0.1, 2), (0.5, 3)], 0.7, 4)]);
        assert_eq!(
            text,
            "# HELP lag_seconds Lag.\n# TYPE lag_seconds histogram\n\
             lag_seconds_bucket{le=\"0.1\"} 2\nlag_seconds_bucket{le=\"0.5\"} 3\nlag_seconds_bucket{le=\"+Inf\"} 4\n\
             lag_seconds_sum 0.7\nlag_seconds_count 4\n"
        );
    }
}
