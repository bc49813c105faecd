use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::hooks::fixture::Fixture;

const ALL: [Lang; 4] = [Lang::Rust, Lang::C, Lang::Python, Lang::Js];
const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hooks-sdk");

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn every_language_gets_sources_tests_fixtures_scripts_and_the_plugins_contract() {
    for lang in ALL {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("open-ports");
        let files = generate("open-ports", lang, &dir).unwrap();
        for want in ["README.md", "build.sh", "test.sh", "fixtures/ports.toml", "fixtures/bad-config.toml", ".gitignore"] {
            assert!(files.contains(&want), "{}: no {want}", lang.label());
        }
        for f in &files {
            let text = read(&dir, f);
            assert!(!text.contains("{{"), "{}: {f} keeps a placeholder", lang.label());
        }
        for script in ["build.sh", "test.sh"] {
            let mode = fs::metadata(dir.join(script)).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "{}: {script} is not executable", lang.label());
        }
        let wit = if lang == Lang::Rust { "wasmcni-hooks-sdk/wit/hook.wit" } else { "wit/hook.wit" };
        assert_eq!(read(&dir, wit), fs::read_to_string(format!("{SDK}/wit/hook.wit")).unwrap());
        let readme = read(&dir, "README.md");
        assert!(readme.contains("wasmcni hook test fixtures/*.toml --module open-ports.wasm"), "{}", lang.label());
        assert!(readme.contains(contract()) && readme.contains("## Deploy"));
        // The fixtures are ones `wasmcni hook test` takes.
        for f in files.iter().filter(|f| f.starts_with("fixtures/")) {
            Fixture::load(&dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", lang.label()));
        }
    }
}

#[test]
fn the_name_is_filled_in_where_each_toolchain_looks_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    generate("my-hook2", Lang::Rust, tmp.path()).unwrap();
    assert!(read(tmp.path(), "Cargo.toml").contains("name = \"my-hook2\""));
    assert!(read(tmp.path(), "build.sh").contains("release/my_hook2.wasm\" my-hook2.wasm"));
    let tmp = tempfile::tempdir().unwrap();
    generate("my-hook2", Lang::Js, tmp.path()).unwrap();
    let pkg: serde_json::Value = serde_json::from_str(&read(tmp.path(), "package.json")).unwrap();
    assert_eq!(pkg["name"], "my-hook2");
    assert!(contract().starts_with("wasmcni:hook@") && !contract().contains(' '), "{}", contract());
}

#[test]
fn names_that_a_toolchain_would_refuse_are_refused_first() {
    for bad in ["", "My-hook", "1hook", "my_hook", "hook-", "a--b", "x.y", &"a".repeat(65)] {
        let e = check_name(bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{bad:?} cannot name a hook: ")), "{e}");
    }
    for good in ["a", "egress-guard", "mtu2"] {
        check_name(good).unwrap();
    }
}

#[test]
fn an_empty_folder_is_used_and_a_full_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    generate("h", Lang::C, tmp.path()).unwrap();
    let e = generate("h", Lang::C, tmp.path()).unwrap_err().to_string();
    assert!(e.contains("already exists and is not empty"), "{e}");
}

/// Every file of hooks-sdk a hook build reads is in the Rust template's copy, and its Cargo.toml asks for
/// what the SDK's does (the workspace's versions and features).
#[test]
fn the_rust_templates_copy_of_the_sdk_is_complete_and_current() {
    let copied: BTreeSet<String> = templates::for_lang(Lang::Rust)
        .filter_map(|t| t.path.strip_prefix("wasmcni-hooks-sdk/"))
        .filter(|p| *p != "Cargo.toml")
        .map(String::from)
        .collect();
    let mut on_disk = BTreeSet::new();
    for sub in ["src", "src/guest", "wit"] {
        for e in fs::read_dir(format!("{SDK}/{sub}")).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                on_disk.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    assert_eq!(copied, on_disk, "hooks-sdk's files changed: update templates.rs");
    for t in templates::for_lang(Lang::Rust).filter(|t| !t.fill) {
        let original = fs::read_to_string(format!("{SDK}/{}", t.path.trim_start_matches("wasmcni-hooks-sdk/"))).unwrap();
        assert_eq!(t.text, original, "{}", t.path);
    }

    let toml = |p: &str| -> toml::Table { toml::from_str(&fs::read_to_string(p).unwrap()).unwrap() };
    let sdk = toml(&format!("{SDK}/Cargo.toml"));
    let workspace = toml(&format!("{SDK}/../Cargo.toml"));
    let template: toml::Table = toml::from_str(&fill_in(include_str!("templates/rust/sdk-Cargo.toml"), "x")).unwrap();
    assert_eq!(template["features"], sdk["features"]);
    let deps = sdk["dependencies"].as_table().unwrap();
    let ours = template["dependencies"].as_table().unwrap();
    assert_eq!(deps.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>());
    for (name, spec) in deps {
        let mut want = workspace["workspace"]["dependencies"][name.as_str()].clone();
        if let toml::Value::String(v) = want {
            want = toml::Value::Table(toml::Table::from_iter([("version".to_string(), toml::Value::String(v))]));
        }
        let mut want = want.as_table().unwrap().clone();
        if spec.get("optional").is_some() {
            want.insert("optional".into(), toml::Value::Boolean(true));
        }
        let mut got = ours[name].clone();
        if let toml::Value::String(v) = got {
            got = toml::Value::Table(toml::Table::from_iter([("version".to_string(), toml::Value::String(v))]));
        }
        assert_eq!(got.as_table().unwrap(), &want, "dependency {name}");
    }
}

/// scripts/scaffold-test.sh builds the JS project with the example's toolchain (target/js-toolchain): the
/// two must ask for the same packages.
#[test]
fn the_js_template_asks_for_the_toolchain_the_example_pins() {
    let json = |text: &str| -> serde_json::Value { serde_json::from_str(text).unwrap() };
    let template = json(&fill_in(include_str!("templates/js/package.json"), "x"));
    let example = json(&fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../example-hooks/port-policy-js/package.json")).unwrap());
    for key in ["devDependencies", "overrides"] {
        assert_eq!(template[key], example[key], "{key}");
    }
}
