//! Another CNI's config that sorts before ours wins: the runtime takes the first loadable file in name order,
//! and pods quietly land on the other network. Say so at install time.

use std::path::Path;

use super::paths::is_cni_config;

pub fn earlier_configs(conf_dir: &Path, ours: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(conf_dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_cni_config(n) && n.as_str() < ours)
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            format!(
                "{}/{n} sorts before {ours}: the runtime loads the first config in name order, so pods would use \
                 that network, not wasmcni; remove it (another CNI's leftovers?) or install under an earlier \
                 name with --conflist-name",
                conf_dir.display()
            )
        })
        .collect()
}
