//! "Did you mean": the known name nearest to a mistyped one, by edit distance (main
//! thread).
//!
//! Design: a typo is one or two letters off (`rte`, `virtal`, `laatencyThresholdMs`), so
//! the suggestion is the candidate with the fewest single-character insertions,
//! deletions and substitutions (Levenshtein distance, compared case-insensitively),
//! offered only when that distance is at most a third of the word (at least 1, at most
//! 3): a word far from every candidate gets no suggestion rather than a random one.

/// The candidate nearest to `word`, when one is near enough (see the module docs); `None`
/// for an exact match or when nothing is near. A difference of case alone is near.
///
/// # Example
/// ```
/// use izyrt::config::suggest::nearest;
/// assert_eq!(nearest("rte", ["rate", "period", "channels"]), Some("rate"));
/// assert_eq!(nearest("virtal", ["default", "virtual"]), Some("virtual"));
/// assert_eq!(nearest("zzzzzz", ["rate", "period"]), None);
/// assert_eq!(nearest("rate", ["rate"]), None);
/// assert_eq!(nearest("Rate", ["rate"]), Some("rate"));
/// ```
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    let lower = word.to_lowercase();
    for c in candidates {
        if c == word {
            return None;
        }
        // 0 for a difference of case only (`enableQosMetrics`): still worth saying.
        let d = distance(&lower, &c.to_lowercase());
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance between `a` and `b`, in characters.
///
/// # Example
/// ```
/// assert_eq!(izyrt::config::suggest::distance("kitten", "sitting"), 3);
/// ```
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != cb));
            diag = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_of_config_keys() {
        let keys = crate::config::KNOWN_KEYS.iter().copied();
        assert_eq!(
            nearest("latencyTresholdMs", keys.clone()),
            Some("latencyThresholdMs")
        );
        assert_eq!(
            nearest("enableQosMetrics", keys.clone()),
            Some("enableQOSMetrics")
        );
        assert_eq!(
            nearest("upsampleRatoi", keys.clone()),
            Some("upsampleRatio")
        );
        assert_eq!(nearest("colour", keys), None);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", ""), 3);
    }
}
