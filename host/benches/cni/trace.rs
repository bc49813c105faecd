//! The plugin's own account of its time, from its debug log (every line carries milliseconds since that
//! process started): per step, the median over the ADDs of one phase, and the ADD and DEL totals.

use std::collections::BTreeMap;

/// One invocation's lines: (ms since its start, message).
type Run = Vec<(f64, String)>;

fn runs(log: &str, command: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut inside = false;
    for line in log.lines() {
        // "<time> wasmcni[pid] +X.XXXms level: message"
        let Some((_, rest)) = line.split_once(" +") else { continue };
        let Some((ms, msg)) = rest.split_once("ms ") else { continue };
        let Ok(ms) = ms.parse::<f64>() else { continue };
        if msg.starts_with("info: ADD container=") || msg.starts_with("info: DEL container=") {
            inside = msg.starts_with(&format!("info: {command} "));
            if inside {
                out.push(Vec::new());
            }
        }
        if let (true, Some(run)) = (inside, out.last_mut()) {
            run.push((ms, msg.to_string()));
        }
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (the ADD steps in order with their median ms, median ADD total, median DEL total).
pub fn summary(log: &str) -> (Vec<(String, f64)>, f64, f64) {
    let adds = runs(log, "ADD");
    let mut order: Vec<String> = Vec::new();
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in &adds {
        let mut prev = 0.0;
        for (ms, msg) in run.iter().filter(|(_, m)| m.contains(" step")) {
            let name = msg.split_once("step").map(|(_, s)| s.trim_start_matches([':', ' ']).to_string()).unwrap_or_default();
            if !steps.contains_key(&name) {
                order.push(name.clone());
            }
            steps.entry(name).or_default().push(ms - prev);
            prev = *ms;
        }
    }
    let ordered = order.into_iter().map(|n| (n.clone(), median(steps.get_mut(&n).expect("recorded")))).collect();
    let total = |runs: Vec<Run>| median(&mut runs.iter().filter_map(|r| r.last().map(|(ms, _)| *ms)).collect::<Vec<_>>());
    (ordered, total(adds), total(runs(log, "DEL")))
}
