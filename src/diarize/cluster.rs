//! Agglomerative clustering of speaker embeddings (average linkage on cosine similarity),
//! stopped by a similarity threshold (the number of speakers is estimated) or at a given
//! number of clusters, then refined by reassigning every item to its nearest centroid.

/// Cosine similarity of two embeddings (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// When to stop merging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// Merge while the two most similar clusters are at least this similar, but always down
    /// to at most `max` clusters.
    Threshold { min_similarity: f32, max: usize },
    /// Merge until exactly this many clusters remain (fewer only if there are fewer items).
    Count(usize),
}

/// Cluster labels (`0..k`, numbered by first appearance) for `items`, each with a weight
/// (e.g. its duration) used for average linkage and centroids.
pub fn cluster(items: &[&[f32]], weights: &[f32], stop: Stop) -> Vec<usize> {
    let n = items.len();
    assert_eq!(n, weights.len(), "one weight per item");
    if n == 0 {
        return Vec::new();
    }
    let mut sim = vec![0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let s = cosine(items[i], items[j]);
            sim[i * n + j] = s;
            sim[j * n + i] = s;
        }
    }
    let mut alive: Vec<bool> = vec![true; n];
    let mut weight: Vec<f32> = weights.to_vec();
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let best_of = |i: usize, alive: &[bool], sim: &[f32]| -> Option<usize> {
        (0..n)
            .filter(|&j| j != i && alive[j])
            .max_by(|&a, &b| sim[i * n + a].total_cmp(&sim[i * n + b]))
    };
    let mut best: Vec<Option<usize>> = (0..n).map(|i| best_of(i, &alive, &sim)).collect();
    let mut clusters = n;
    while let Some((a, b)) = (0..n)
        .filter(|&i| alive[i])
        .filter_map(|i| best[i].map(|j| (i, j)))
        .max_by(|x, y| sim[x.0 * n + x.1].total_cmp(&sim[y.0 * n + y.1]))
    {
        let merge = match stop {
            Stop::Threshold {
                min_similarity,
                max,
            } => sim[a * n + b] >= min_similarity || clusters > max.max(1),
            Stop::Count(k) => clusters > k.max(1),
        };
        if !merge {
            break;
        }
        // b joins a; average linkage by Lance–Williams.
        let (wa, wb) = (weight[a], weight[b]);
        for k in 0..n {
            if alive[k] && k != a && k != b {
                let s = (wa * sim[a * n + k] + wb * sim[b * n + k]) / (wa + wb);
                sim[a * n + k] = s;
                sim[k * n + a] = s;
            }
        }
        alive[b] = false;
        weight[a] += wb;
        let moved = std::mem::take(&mut members[b]);
        members[a].extend(moved);
        clusters -= 1;
        best[a] = best_of(a, &alive, &sim);
        for k in 0..n {
            if !alive[k] || k == a {
                continue;
            }
            match best[k] {
                Some(j) if j == a || j == b => best[k] = best_of(k, &alive, &sim),
                Some(j) if sim[k * n + a] > sim[k * n + j] => best[k] = Some(a),
                _ => {}
            }
        }
    }
    let mut labels = vec![0usize; n];
    for (c, m) in members.iter().filter(|m| !m.is_empty()).enumerate() {
        for &i in m {
            labels[i] = c;
        }
    }
    let labels = refine(items, weights, labels, 3);
    renumber(&labels)
}

/// Weighted, L2-normalised centroid of each label `0..k`.
pub fn centroids(items: &[&[f32]], weights: &[f32], labels: &[usize]) -> Vec<Vec<f32>> {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let dim = items.first().map_or(0, |x| x.len());
    let mut c = vec![vec![0f32; dim]; k];
    for ((x, &w), &l) in items.iter().zip(weights).zip(labels) {
        for (acc, v) in c[l].iter_mut().zip(x.iter()) {
            *acc += w * v;
        }
    }
    for v in &mut c {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
    }
    c
}

/// The index of the centroid most similar to `x`.
pub fn nearest(centroids: &[Vec<f32>], x: &[f32]) -> usize {
    (0..centroids.len())
        .max_by(|&a, &b| cosine(&centroids[a], x).total_cmp(&cosine(&centroids[b], x)))
        .unwrap_or(0)
}

/// Reassigns items to their nearest centroid a few times (clusters never vanish: a cluster
/// that would lose all its items keeps them).
fn refine(items: &[&[f32]], weights: &[f32], mut labels: Vec<usize>, rounds: usize) -> Vec<usize> {
    for _ in 0..rounds {
        let c = centroids(items, weights, &labels);
        let next: Vec<usize> = items.iter().map(|x| nearest(&c, x)).collect();
        if (0..c.len()).any(|k| !next.contains(&k)) || next == labels {
            break;
        }
        labels = next;
    }
    labels
}

/// Merges clusters whose total weight is below `min_weight` into their nearest other cluster,
/// smallest first, until none is left (or one cluster remains).
pub fn absorb_small(
    items: &[&[f32]],
    weights: &[f32],
    mut labels: Vec<usize>,
    min_weight: f32,
) -> Vec<usize> {
    loop {
        let labels_now = renumber(&labels);
        let k = labels_now.iter().max().map_or(0, |m| m + 1);
        if k < 2 {
            return labels_now;
        }
        let mut total = vec![0f32; k];
        for (&l, &w) in labels_now.iter().zip(weights) {
            total[l] += w;
        }
        let small = (0..k)
            .filter(|&c| total[c] < min_weight)
            .min_by(|&a, &b| total[a].total_cmp(&total[b]));
        let Some(small) = small else {
            return labels_now;
        };
        let c = centroids(items, weights, &labels_now);
        let into = (0..k)
            .filter(|&o| o != small)
            .max_by(|&a, &b| cosine(&c[a], &c[small]).total_cmp(&cosine(&c[b], &c[small])))
            .expect("at least two clusters");
        labels = labels_now
            .into_iter()
            .map(|l| if l == small { into } else { l })
            .collect();
    }
}

/// Labels renumbered `0..k` in order of first appearance.
pub fn renumber(labels: &[usize]) -> Vec<usize> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[f32]) -> Vec<f32> {
        x.to_vec()
    }

    #[test]
    fn separates_two_groups_by_threshold_and_by_count() {
        let items = [
            v(&[1.0, 0.1, 0.0]),
            v(&[0.0, 1.0, 0.1]),
            v(&[0.9, 0.2, 0.0]),
            v(&[0.1, 0.9, 0.0]),
            v(&[1.0, 0.0, 0.1]),
        ];
        let refs: Vec<&[f32]> = items.iter().map(Vec::as_slice).collect();
        let w = [1.0; 5];
        let stop = Stop::Threshold {
            min_similarity: 0.8,
            max: 8,
        };
        assert_eq!(cluster(&refs, &w, stop), vec![0, 1, 0, 1, 0]);
        assert_eq!(cluster(&refs, &w, Stop::Count(2)), vec![0, 1, 0, 1, 0]);
        assert_eq!(cluster(&refs, &w, Stop::Count(1)), vec![0; 5]);
        let strict = Stop::Threshold {
            min_similarity: 0.9999,
            max: 3,
        };
        assert_eq!(cluster(&refs, &w, strict).iter().max(), Some(&2));
        assert!(cluster(&[], &[], Stop::Count(2)).is_empty());
    }

    #[test]
    fn small_clusters_join_their_nearest_neighbour() {
        let items = [
            v(&[1.0, 0.0]),
            v(&[0.0, 1.0]),
            v(&[0.9, 0.3]),
            v(&[0.1, 1.0]),
        ];
        let refs: Vec<&[f32]> = items.iter().map(Vec::as_slice).collect();
        let labels = absorb_small(&refs, &[5.0, 5.0, 1.0, 5.0], vec![0, 1, 2, 1], 3.0);
        assert_eq!(labels, vec![0, 1, 0, 1]);
        assert_eq!(
            absorb_small(&refs, &[1.0; 4], vec![0, 1, 2, 1], 30.0),
            vec![0; 4]
        );
    }

    #[test]
    fn renumbers_by_first_appearance() {
        assert_eq!(renumber(&[3, 3, 1, 3, 0]), vec![0, 0, 1, 0, 2]);
    }
}
