//! Words of a text, and how much two texts share: what near-duplicate facts, the evaluation's
//! fact matching and memory's "is this in the user's words" check are built on.

use std::collections::BTreeSet;

/// The lowercase words of `text` (runs of letters and digits).
pub fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The share of words two sets have in common (1 for two empty sets).
pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercase_runs_of_letters_and_digits() {
        let got: Vec<String> = words("Biscuit's 2nd walk, BISCUIT!").into_iter().collect();
        assert_eq!(got, ["2nd", "biscuit", "s", "walk"]);
    }

    #[test]
    fn jaccard_is_the_shared_share() {
        assert_eq!(jaccard(&words("a b"), &words("b c")), 1.0 / 3.0);
        assert_eq!(jaccard(&words(""), &words("")), 1.0);
    }
}
