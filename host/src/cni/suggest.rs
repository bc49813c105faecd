//! "Did you mean ...?": the closest of a few known words to a misspelled one.

/// Edit distance (insertions, deletions, substitutions), case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.to_lowercase().chars().collect(), b.to_lowercase().chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known word closest to `word`, if it is close enough to be a typo (a third of its length, at least
/// two edits), or differs only in case and punctuation ("built-in" for "builtin").
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let squash = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    if let Some(k) = known.iter().find(|k| squash(k) == squash(word)) {
        return Some(k);
    }
    let limit = (word.chars().count() / 3).max(2);
    known.iter().map(|k| (distance(word, k), *k)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typos_find_their_word() {
        let keys = ["ipMasq", "mtu", "rangeStart", "rangeEnd", "subnet"];
        assert_eq!(closest("ipMasqq", &keys), Some("ipMasq"));
        assert_eq!(closest("rangeStrat", &keys), Some("rangeStart"));
        assert_eq!(closest("built-in", &["builtin", "host-local"]), Some("builtin"));
        assert_eq!(closest("IPMASQ", &keys), Some("ipMasq"));
        assert_eq!(closest("frobnicate", &keys), None);
    }
}
