//! Token-budget batching: inputs sorted by length (longest first), packed
//! into batches whose padded size (`count × longest`) stays within a budget.
//! Sorting keeps padding small; the budget bounds the working set whatever
//! the request mix (one 512-token input or 2,000 short ones).

/// Batches of input indices. Every index appears exactly once; an input longer
/// than the budget gets a batch of its own.
pub fn plan(lens: &[usize], token_budget: usize, max_batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    // Stable: equal lengths keep their input order.
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut longest = 0usize;
    for i in order {
        let l = lens[i].max(1);
        let new_longest = longest.max(l);
        let fits = cur.len() < max_batch.max(1)
            && new_longest.saturating_mul(cur.len() + 1) <= token_budget;
        if !cur.is_empty() && !fits {
            out.push(std::mem::take(&mut cur));
            longest = 0;
        }
        longest = longest.max(l);
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_once_within_budget_longest_first() {
        let lens = [5, 100, 7, 100, 1, 60, 3];
        let b = plan(&lens, 200, 64);
        let mut seen: Vec<usize> = b.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lens.len()).collect::<Vec<_>>());
        for batch in &b {
            let longest = batch.iter().map(|&i| lens[i]).max().unwrap();
            assert!(longest * batch.len() <= 200 || batch.len() == 1, "{b:?}");
        }
        assert_eq!(b[0], vec![1, 3], "the two longest first, in input order");
    }

    #[test]
    fn oversized_input_alone_and_max_batch_respected() {
        assert_eq!(plan(&[500, 2], 100, 8), vec![vec![0], vec![1]]);
        let b = plan(&[1; 10], 1000, 4);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert!(plan(&[], 10, 4).is_empty());
    }
}
