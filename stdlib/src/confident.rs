//! Confident learning (Northcutt, Jiang and Chuang, 2021): which given labels out-of-fold class
//! probabilities disagree with.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    PruneByNoiseRate,
    ConfidentJoint,
    Argmax,
}

/// One flagged sample: its row, the class confident learning suggests, and its self-confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub row: usize,
    pub suggested: usize,
    pub self_confidence: f32,
}

/// Confident learning over `probs` (rows × classes, each row out-of-sample) and `labels`.
pub fn find_issues(probs: &[Vec<f32>], labels: &[usize], classes: usize, method: Method) -> Vec<Issue> {
    let n = labels.len();
    let argmax = |p: &[f32]| p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
    if method == Method::Argmax {
        return (0..n)
            .filter_map(|i| {
                let best = argmax(&probs[i]);
                (best != labels[i]).then(|| Issue { row: i, suggested: best, self_confidence: probs[i][labels[i]] })
            })
            .collect();
    }
    // Per-class thresholds: the mean probability of class j over the samples labelled j.
    let mut sum = vec![0f64; classes];
    let mut count = vec![0usize; classes];
    for i in 0..n {
        sum[labels[i]] += probs[i][labels[i]] as f64;
        count[labels[i]] += 1;
    }
    let threshold: Vec<f32> = (0..classes).map(|j| if count[j] > 0 { (sum[j] / count[j] as f64) as f32 } else { f32::INFINITY }).collect();
    // The confident joint: each sample counts towards (given label, the most probable class
    // among those whose threshold it reaches).
    let mut joint = vec![vec![0usize; classes]; classes];
    let mut confident_class: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        let best = (0..classes).filter(|&j| probs[i][j] >= threshold[j]).max_by(|&a, &b| probs[i][a].total_cmp(&probs[i][b]));
        if let Some(j) = best {
            joint[labels[i]][j] += 1;
            confident_class[i] = Some(j);
        }
    }
    let mut flagged: HashMap<usize, Issue> = HashMap::new();
    match method {
        Method::ConfidentJoint => {
            for i in 0..n {
                if let Some(j) = confident_class[i] {
                    if j != labels[i] {
                        flagged.insert(i, Issue { row: i, suggested: j, self_confidence: probs[i][labels[i]] });
                    }
                }
            }
        }
        _ => {
            // Calibrate each row of the joint to the label's count, then, for each (given i,
            // true j) cell, prune that many samples labelled i with the largest margin p_j - p_i.
            for i in 0..classes {
                let row_total: usize = joint[i].iter().sum();
                if row_total == 0 {
                    continue;
                }
                let rows_i: Vec<usize> = (0..n).filter(|&r| labels[r] == i).collect();
                for j in (0..classes).filter(|&j| j != i) {
                    let calibrated = joint[i][j] as f64 / row_total as f64 * count[i] as f64;
                    let take = calibrated.round() as usize;
                    if take == 0 {
                        continue;
                    }
                    let mut by_margin: Vec<(f32, usize)> = rows_i.iter().map(|&r| (probs[r][j] - probs[r][i], r)).collect();
                    by_margin.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    for &(margin, r) in by_margin.iter().take(take) {
                        let e = flagged.entry(r).or_insert(Issue { row: r, suggested: j, self_confidence: probs[r][i] });
                        if margin > probs[r][e.suggested] - probs[r][i] {
                            e.suggested = j;
                        }
                    }
                }
            }
            // As cleanlab does: a sample the model predicts as its given label is not an issue.
            flagged.retain(|&r, _| argmax(&probs[r]) != labels[r]);
        }
    }
    let mut out: Vec<Issue> = flagged.into_values().collect();
    out.sort_by(|a, b| a.self_confidence.total_cmp(&b.self_confidence).then(a.row.cmp(&b.row)));
    out
}
