//! The files of a new hook project, per language. Templates are files under templates/ with `{{name}}`,
//! `{{module}}`, `{{version}}` and `{{contract}}` to fill in; the contract and the Rust SDK are this
//! binary's own copies, written verbatim.

use super::Lang;

/// One file of a project.
pub struct Template {
    pub path: &'static str,
    pub text: &'static str,
    /// Fill in the placeholders (the contract and the SDK's sources are copied as they are).
    pub fill: bool,
}

impl Template {
    /// The scripts are run as `bash build.sh`, but `./build.sh` should work too.
    pub fn executable(&self) -> bool {
        self.path.ends_with(".sh")
    }
}

const fn fill(path: &'static str, text: &'static str) -> Template {
    Template { path, text, fill: true }
}

const fn copy(path: &'static str, text: &'static str) -> Template {
    Template { path, text, fill: false }
}

/// The contract this binary speaks: the plugin's own copy of hooks-sdk/wit/hook.wit.
pub const WIT: &str = include_str!("../../../../hooks-sdk/wit/hook.wit");

const COMMON: &[Template] = &[
    fill("fixtures/ports.toml", include_str!("templates/common/ports.toml")),
    fill("fixtures/bad-config.toml", include_str!("templates/common/bad-config.toml")),
    fill(".gitignore", include_str!("templates/common/gitignore")),
];

/// Appended to every README.
pub const DEPLOY: &str = include_str!("templates/common/deploy.md");

const RUST: &[Template] = &[
    fill("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
    fill("src/lib.rs", include_str!("templates/rust/lib.rs")),
    fill("build.sh", include_str!("templates/rust/build.sh")),
    fill("test.sh", include_str!("templates/rust/test.sh")),
    fill("README.md", include_str!("templates/rust/README.md")),
    // The SDK, vendored: it is not published as a crate, and a copy pins the contract the plugin speaks.
    fill("wasmcni-hooks-sdk/Cargo.toml", include_str!("templates/rust/sdk-Cargo.toml")),
    copy("wasmcni-hooks-sdk/src/lib.rs", include_str!("../../../../hooks-sdk/src/lib.rs")),
    copy("wasmcni-hooks-sdk/src/layout.rs", include_str!("../../../../hooks-sdk/src/layout.rs")),
    copy("wasmcni-hooks-sdk/src/guest/mod.rs", include_str!("../../../../hooks-sdk/src/guest/mod.rs")),
    copy("wasmcni-hooks-sdk/src/guest/helpers.rs", include_str!("../../../../hooks-sdk/src/guest/helpers.rs")),
    copy("wasmcni-hooks-sdk/src/guest/testing.rs", include_str!("../../../../hooks-sdk/src/guest/testing.rs")),
    copy("wasmcni-hooks-sdk/wit/hook.wit", WIT),
];

const C: &[Template] = &[
    fill("hook.c", include_str!("templates/c/hook.c")),
    fill("test_hook.c", include_str!("templates/c/test_hook.c")),
    fill("build.sh", include_str!("templates/c/build.sh")),
    fill("test.sh", include_str!("templates/c/test.sh")),
    fill("README.md", include_str!("templates/c/README.md")),
    copy("wit/hook.wit", WIT),
];

const PYTHON: &[Template] = &[
    fill("app.py", include_str!("templates/python/app.py")),
    fill("test_app.py", include_str!("templates/python/test_app.py")),
    fill("build.sh", include_str!("templates/python/build.sh")),
    fill("test.sh", include_str!("templates/python/test.sh")),
    fill("README.md", include_str!("templates/python/README.md")),
    copy("wit/hook.wit", WIT),
];

const JS: &[Template] = &[
    fill("hook.js", include_str!("templates/js/hook.js")),
    fill("build.mjs", include_str!("templates/js/build.mjs")),
    fill("package.json", include_str!("templates/js/package.json")),
    fill("test/hook.test.js", include_str!("templates/js/hook.test.js")),
    fill("test/register.mjs", include_str!("templates/js/register.mjs")),
    fill("test/log.mjs", include_str!("templates/js/log.mjs")),
    fill("build.sh", include_str!("templates/js/build.sh")),
    fill("test.sh", include_str!("templates/js/test.sh")),
    fill("README.md", include_str!("templates/js/README.md")),
    copy("wit/hook.wit", WIT),
];

/// Every file of a `lang` project.
pub fn for_lang(lang: Lang) -> impl Iterator<Item = &'static Template> {
    let own = match lang {
        Lang::Rust => RUST,
        Lang::C => C,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    own.iter().chain(COMMON)
}
