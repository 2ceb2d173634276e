//! The Prometheus text exposition format, as far as the bench reads it:
//! samples (`name{label="value",…} value [timestamp]`), with `# HELP`,
//! `# TYPE` and other comments skipped; and the quantile of a histogram
//! from its cumulative buckets, as Prometheus' `histogram_quantile` computes
//! it.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (`forum_http_requests_total`, or a histogram's
    /// `…_bucket`, `…_sum`, `…_count`).
    pub name: String,
    /// The labels, in the order of the line, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a text gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The samples kept, in the text's order.
    pub samples: Vec<Sample>,
    /// Lines that were neither comments, blank nor samples.
    pub malformed: usize,
}

/// Parses every sample of `text`.
pub fn parse(text: &str) -> Parsed {
    parse_filtered(text, |_| true)
}

/// Parses the samples of `text` whose name `keep` accepts (the others are
/// not unescaped nor allocated, nor checked).
pub fn parse_filtered(text: &str, keep: impl Fn(&str) -> bool) -> Parsed {
    let mut out = Parsed::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if !valid_name(name) {
            out.malformed += 1;
            continue;
        }
        if !keep(name) {
            continue;
        }
        match parse_rest(&line[name_end..]) {
            Some((labels, value)) => out.samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            }),
            None => out.malformed += 1,
        }
    }
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The labels and value after the name: `{a="b",c="d"} 1.5 [timestamp]`.
fn parse_rest(rest: &str) -> Option<(Vec<(String, String)>, f64)> {
    let mut labels = Vec::new();
    let mut rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut s = inner;
        loop {
            s = s.trim_start_matches([' ', '\t', ',']);
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find('=')?;
            let key = s[..eq].trim();
            if !valid_name(key) || key.contains(':') {
                return None;
            }
            let (value, after) = quoted(s[eq + 1..].trim_start())?;
            labels.push((key.to_string(), value));
            s = after.trim_start();
            if !(s.starts_with(',') || s.starts_with('}')) {
                return None;
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next()?)?;
    // An optional integer timestamp (milliseconds), then nothing.
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some((labels, value))
}

/// A double-quoted label value with `\\`, `\"` and `\n` escapes, and what
/// follows its closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                '\\' => value.push('\\'),
                '"' => value.push('"'),
                // Not an escape the format defines: kept as written.
                other => {
                    value.push('\\');
                    value.push(other);
                }
            },
            c => value.push(c),
        }
    }
    None
}

/// A sample value: a float, `NaN`, `+Inf`, `-Inf` (any case).
pub fn parse_value(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        // Rust would also take `infinity`, which the format does not have.
        l if l.contains("inf") => None,
        _ => s.parse().ok(),
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of a histogram given as (upper bound `le`,
/// cumulative count) pairs, one of them `le = +Inf`, in any order,
/// interpolated linearly inside the bucket where it falls, as Prometheus'
/// `histogram_quantile`: the lowest bucket starts at 0 (when its bound is
/// positive); a quantile in the `+Inf` bucket is the highest finite bound.
/// Counts that decrease with `le` are raised to the running maximum.
///
/// `None` for a `q` out of range, no `+Inf` bucket, no observations, or no
/// finite bucket to answer with.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut b: Vec<(f64, f64)> = buckets
        .iter()
        .copied()
        .filter(|(le, n)| !le.is_nan() && !n.is_nan())
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Buckets of the same bound (from several series) are one bucket.
    b.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 += later.1;
            true
        } else {
            false
        }
    });
    match b.last() {
        Some((le, _)) if *le == f64::INFINITY => {}
        _ => return None,
    }
    let mut max = 0.0f64;
    for bucket in &mut b {
        max = max.max(bucket.1);
        bucket.1 = max;
    }
    let total = b.last().map_or(0.0, |x| x.1);
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let i = b.iter().position(|(_, n)| *n >= rank)?;
    if i == b.len() - 1 {
        // In the +Inf bucket: the highest finite bound, if there is one.
        return i.checked_sub(1).map(|j| b[j].0);
    }
    let (upper, count) = b[i];
    if i == 0 && upper <= 0.0 {
        return Some(upper);
    }
    let (lower, below) = if i == 0 { (0.0, 0.0) } else { b[i - 1] };
    let inside = count - below;
    if inside <= 0.0 {
        return Some(lower);
    }
    Some(lower + (upper - lower) * ((rank - below) / inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &Sample) -> Vec<(&str, &str)> {
        s.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn a_counter_with_labels_parses_into_name_labels_and_value() {
        let p = parse(
            "forum_http_requests_total{method=\"POST\",route=\"/api/posts/{id}\",status=\"201\"} 1027\n",
        );
        assert_eq!(p.malformed, 0);
        assert_eq!(p.samples.len(), 1);
        let s = &p.samples[0];
        assert_eq!(s.name, "forum_http_requests_total");
        assert_eq!(
            labels(s),
            vec![
                ("method", "POST"),
                ("route", "/api/posts/{id}"),
                ("status", "201")
            ]
        );
        assert_eq!(s.value, 1027.0);
        assert_eq!(s.label("route"), Some("/api/posts/{id}"));
        assert_eq!(s.label("nope"), None);
    }

    #[test]
    fn a_sample_without_labels_and_one_with_a_timestamp_both_parse() {
        let p = parse("forum_ws_open 12\nforum_nats_connected{} 1 1700000000000\n");
        assert_eq!(p.malformed, 0);
        assert_eq!(p.samples[0].value, 12.0);
        assert!(p.samples[0].labels.is_empty());
        assert_eq!(p.samples[1].name, "forum_nats_connected");
        assert_eq!(p.samples[1].value, 1.0);
    }

    #[test]
    fn comments_help_type_and_blank_lines_are_skipped() {
        let text = "# HELP forum_ws_open live sockets open\n\
                    # TYPE forum_ws_open gauge\n\
                    \n\
                    # just a comment { with \" odd } things\n\
                    forum_ws_open 3\n\
                    # EOF\n";
        let p = parse(text);
        assert_eq!(p.malformed, 0);
        assert_eq!(p.samples.len(), 1);
        assert_eq!(p.samples[0].value, 3.0);
    }

    #[test]
    fn histogram_buckets_parse_with_their_le_including_plus_inf() {
        let text = "# TYPE forum_batch_commands histogram\n\
            forum_batch_commands_bucket{service=\"posts\",le=\"1\"} 4\n\
            forum_batch_commands_bucket{service=\"posts\",le=\"2\"} 9\n\
            forum_batch_commands_bucket{service=\"posts\",le=\"+Inf\"} 10\n\
            forum_batch_commands_sum{service=\"posts\"} 17\n\
            forum_batch_commands_count{service=\"posts\"} 10\n";
        let p = parse(text);
        assert_eq!(p.malformed, 0);
        assert_eq!(p.samples.len(), 5);
        let les: Vec<f64> = p
            .samples
            .iter()
            .filter(|s| s.name == "forum_batch_commands_bucket")
            .filter_map(|s| s.label("le").and_then(parse_value))
            .collect();
        assert_eq!(les, vec![1.0, 2.0, f64::INFINITY]);
        assert_eq!(p.samples[4].name, "forum_batch_commands_count");
        assert_eq!(p.samples[4].value, 10.0);
    }

    #[test]
    fn escaped_label_values_are_unescaped() {
        let p = parse(r#"m{a="say \"hi\"",b="back\\slash",c="two\nlines",d="a,b}=c"} 1"#);
        assert_eq!(p.malformed, 0);
        assert_eq!(
            labels(&p.samples[0]),
            vec![
                ("a", "say \"hi\""),
                ("b", "back\\slash"),
                ("c", "two\nlines"),
                ("d", "a,b}=c")
            ]
        );
    }

    #[test]
    fn nan_and_infinite_values_parse_as_such() {
        let p = parse("a NaN\nb +Inf\nc -Inf\nd 1.5e-3\ne -0\n");
        assert_eq!(p.malformed, 0);
        assert!(p.samples[0].value.is_nan());
        assert_eq!(p.samples[1].value, f64::INFINITY);
        assert_eq!(p.samples[2].value, f64::NEG_INFINITY);
        assert_eq!(p.samples[3].value, 0.0015);
        assert_eq!(p.samples[4].value, 0.0);
    }

    #[test]
    fn a_trailing_comma_and_spaces_inside_the_braces_are_accepted() {
        let p = parse("m{ a=\"1\" , b=\"2\", } 7\n");
        assert_eq!(p.malformed, 0);
        assert_eq!(labels(&p.samples[0]), vec![("a", "1"), ("b", "2")]);
    }

    #[test]
    fn malformed_lines_are_counted_and_the_rest_still_parses() {
        let text = "m{a=\"unterminated} 1\n\
                    m{a=\"1\"\n\
                    m{a=1} 2\n\
                    m 1 2 3\n\
                    m infinity\n\
                    m\n\
                    9bad 1\n\
                    m{a=\"1\"} notanumber\n\
                    ok 4\n";
        let p = parse(text);
        assert_eq!(p.malformed, 8);
        assert_eq!(p.samples.len(), 1);
        assert_eq!(p.samples[0].name, "ok");
    }

    #[test]
    fn a_filter_keeps_only_the_names_it_accepts() {
        let p = parse_filtered("a 1\nb{x=\"y\"} 2\nc 3\n", |n| n != "b");
        let names: Vec<&str> = p.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["a", "c"]);
    }

    #[test]
    fn a_histogram_quantile_interpolates_inside_its_bucket() {
        // 10 in (0, 1], 10 in (1, 2], none above.
        let b = [(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(histogram_quantile(0.5, &b), Some(1.0));
        assert_eq!(histogram_quantile(0.25, &b), Some(0.5));
        assert_eq!(histogram_quantile(0.75, &b), Some(1.5));
        assert_eq!(histogram_quantile(1.0, &b), Some(2.0));
    }

    #[test]
    fn a_histogram_quantile_in_the_inf_bucket_is_the_highest_finite_bound() {
        let b = [(0.5, 1.0), (1.0, 2.0), (f64::INFINITY, 100.0)];
        assert_eq!(histogram_quantile(0.99, &b), Some(1.0));
        assert_eq!(histogram_quantile(0.5, &[(f64::INFINITY, 3.0)]), None);
    }

    #[test]
    fn a_histogram_quantile_accepts_buckets_in_any_order_and_merges_equal_bounds() {
        let b = [
            (f64::INFINITY, 10.0),
            (2.0, 10.0),
            (1.0, 5.0),
            (f64::INFINITY, 10.0),
            (2.0, 10.0),
            (1.0, 5.0),
        ];
        assert_eq!(histogram_quantile(0.5, &b), Some(1.0));
        assert_eq!(histogram_quantile(0.75, &b), Some(1.5));
    }

    #[test]
    fn a_histogram_quantile_is_none_without_observations_inf_bucket_or_a_valid_q() {
        let empty = [(1.0, 0.0), (f64::INFINITY, 0.0)];
        assert_eq!(histogram_quantile(0.5, &empty), None);
        assert_eq!(histogram_quantile(0.5, &[(1.0, 4.0), (2.0, 8.0)]), None);
        assert_eq!(histogram_quantile(0.5, &[]), None);
        let b = [(1.0, 4.0), (f64::INFINITY, 4.0)];
        assert_eq!(histogram_quantile(-0.1, &b), None);
        assert_eq!(histogram_quantile(1.1, &b), None);
        assert_eq!(histogram_quantile(f64::NAN, &b), None);
    }

    #[test]
    fn a_histogram_quantile_stays_within_the_bounds_of_its_buckets() {
        let b = [
            (0.0005, 3.0),
            (0.001, 3.0),
            (0.0025, 7.0),
            (0.005, 40.0),
            (0.01, 41.0),
            (f64::INFINITY, 41.0),
        ];
        let mut last = 0.0;
        for i in 0..=100 {
            let q = i as f64 / 100.0;
            let v = histogram_quantile(q, &b).unwrap_or(f64::NAN);
            assert!((0.0..=0.01).contains(&v), "q {q} gave {v}");
            assert!(v >= last, "q {q} gave {v} below {last}");
            last = v;
        }
    }

    #[test]
    fn a_histogram_quantile_repairs_counts_that_decrease() {
        // The 2 bucket says 3, below the 1 bucket's 5: taken as 5.
        let b = [(1.0, 5.0), (2.0, 3.0), (4.0, 10.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.5, &b), Some(1.0));
        assert_eq!(histogram_quantile(0.75, &b), Some(2.0 + 2.0 * (2.5 / 5.0)));
    }

    #[test]
    fn a_histogram_quantile_of_a_first_bucket_at_or_below_zero_is_that_bound() {
        let b = [(0.0, 4.0), (1.0, 8.0), (f64::INFINITY, 8.0)];
        assert_eq!(histogram_quantile(0.25, &b), Some(0.0));
    }
}
