//! Reading `iptables-save` dumps: one save serves every check and teardown of a family.

/// The `*table ... COMMIT` part of a full `iptables-save` dump (empty when the table is absent).
pub fn table_section<'a>(saved: &'a str, table: &str) -> &'a str {
    let header = format!("*{table}");
    // Byte offsets of whole lines, whatever their ending (`lines()` would hide a "\r").
    let mut offset = 0;
    let mut found = None;
    for line in saved.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == header {
            found = Some(offset);
            break;
        }
        offset += line.len();
    }
    let Some(offset) = found else { return "" };
    let rest = &saved[offset..];
    let end = rest.find("\nCOMMIT").map(|i| i + "\nCOMMIT".len()).unwrap_or(rest.len());
    &rest[..end]
}

/// Whether the dump declares `chain` (a `:CHAIN POLICY [counters]` line).
pub fn declares_chain(saved: &str, chain: &str) -> bool {
    let decl = format!(":{chain} ");
    saved.lines().any(|l| l.starts_with(&decl))
}

/// Removal of `chain` from `table` given that table's current iptables-save dump. Deleting the jumps by their
/// exact saved text works whatever their match options are (also rules written by older versions).
pub fn render_chain_teardown(table: &str, chain: &str, saved: &str) -> Option<String> {
    let exists = declares_chain(saved, chain);
    let (own, jump_end, jump_mid) = (format!("-A {chain} "), format!(" -j {chain}"), format!(" -j {chain} "));
    let jumps: Vec<&str> = saved
        .lines()
        .filter(|l| l.starts_with("-A ") && !l.starts_with(&own))
        .filter(|l| l.ends_with(&jump_end) || l.contains(&jump_mid))
        .collect();
    if !exists && jumps.is_empty() {
        return None;
    }
    let mut out = format!("*{table}\n");
    for j in jumps {
        out += &format!("-D{}\n", &j[2..]);
    }
    if exists {
        out += &format!("-F {chain}\n-X {chain}\n");
    }
    Some(out + "COMMIT\n")
}

/// The input that undoes `setup` (an iptables-restore --noflush input of ours) exactly as written: its
/// rules in chains it does not declare (the jumps) deleted, then the chains it declares flushed and
/// removed. It fails as a whole when anything it names is not there (or a chain is still jumped to from
/// elsewhere), so the caller falls back to reading the tables; when it works, DEL read nothing at all.
pub fn render_inverse(setup: &str) -> String {
    let mut out = String::new();
    let mut declared: Vec<&str> = Vec::new();
    let mut deletes = String::new();
    for line in setup.lines() {
        if line.starts_with('*') {
            out += line;
            out.push('\n');
            declared.clear();
            deletes.clear();
        } else if let Some(decl) = line.strip_prefix(':') {
            declared.extend(decl.split(' ').next());
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split(' ').next().unwrap_or_default();
            if !declared.contains(&chain) {
                deletes += &format!("-D {rule}\n");
            }
        } else if line == "COMMIT" {
            out += &deletes;
            for c in &declared {
                out += &format!("-F {c}\n-X {c}\n");
            }
            out += "COMMIT\n";
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inverse_deletes_the_jumps_then_the_chains() {
        let setup = "*nat\n:CNI-a - [0:0]\n-A CNI-a -d 10.0.0.0/24 -j ACCEPT\n-A POSTROUTING -s 10.0.0.2 -m comment --comment \"x y\" -j CNI-a\nCOMMIT\n";
        assert_eq!(render_inverse(setup), "*nat\n-D POSTROUTING -s 10.0.0.2 -m comment --comment \"x y\" -j CNI-a\n-F CNI-a\n-X CNI-a\nCOMMIT\n");
    }

    #[test]
    fn table_sections_of_a_full_dump() {
        let dump = "# Generated\n*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j X\nCOMMIT\n# c\n*nat\n:CNI-a - [0:0]\nCOMMIT\n";
        assert_eq!(table_section(dump, "filter"), "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j X\nCOMMIT");
        assert_eq!(table_section(dump, "nat"), "*nat\n:CNI-a - [0:0]\nCOMMIT");
        assert_eq!(table_section(dump, "mangle"), "");
    }

    #[test]
    fn declared_chains_only() {
        let dump = "*nat\n:CNI-ab - [0:0]\n-A POSTROUTING -j CNI-abc\nCOMMIT\n";
        assert!(declares_chain(dump, "CNI-ab"));
        assert!(!declares_chain(dump, "CNI-abc"), "a jump is not a declaration");
    }
}
