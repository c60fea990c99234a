//! Markdown and number formatting for the page: tables, times, ratios, counts.

/// A table row: a label, a time per size, and the slowest over the fastest.
pub(crate) fn time_row(label: String, times: &[f64]) -> Vec<String> {
    let mut row = vec![label];
    row.extend(times.iter().map(|ns| time(*ns)));
    row.push(ratio(slowest_over_fastest(times)));
    row
}

/// The largest of `times` over the smallest.
pub(crate) fn slowest_over_fastest(times: &[f64]) -> f64 {
    let max = times.iter().copied().fold(f64::MIN, f64::max);
    let min = times.iter().copied().fold(f64::MAX, f64::min);
    max / min
}

/// `1 round`, `3 rounds`.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A markdown table.
pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = String::new();
    out.push_str(&format!("| {} |\n", headers.join(" | ")));
    out.push_str(&format!(
        "|{}\n",
        headers.iter().map(|_| " --- |").collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// A duration given in nanoseconds, with a unit that keeps three significant digits.
pub(crate) fn time(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// `0.27x`, `1.05x`, `812x`.
pub(crate) fn ratio(value: f64) -> String {
    format!("{}x", ratio_number(value))
}

/// A ratio without its `x`: two decimals, none from 100 up.
pub(crate) fn ratio_number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Markdown bold.
pub(crate) fn bold(text: String) -> String {
    format!("**{text}**")
}

/// `1,024`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
