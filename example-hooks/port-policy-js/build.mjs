// Builds hook.js into a WebAssembly component with componentize-js's componentize() (the jco CLI's
// componentize fails on a WIT path it cannot stat). Usage: node build.mjs WIT_DIR OUT.wasm
// JS_TOOLCHAIN names a folder where `npm ci` installed this package's devDependencies, when they are not
// in ./node_modules (this repo keeps them under target/).
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [wit, out] = process.argv.slice(2);
if (!wit || !out) {
  console.error('usage: node build.mjs WIT_DIR OUT.wasm');
  process.exit(2);
}
const pkg = '@bytecodealliance/componentize-js';
let entry = pkg;
if (process.env.JS_TOOLCHAIN) {
  const dir = join(resolve(process.env.JS_TOOLCHAIN), 'node_modules', pkg);
  entry = pathToFileURL(join(dir, JSON.parse(readFileSync(join(dir, 'package.json'))).exports.import)).href;
}
const { componentize } = await import(entry);
const { component } = await componentize({
  sourcePath: resolve('hook.js'),
  witPath: resolve(wit),
  worldName: 'hook',
  // A "pure" component: it imports only the contract's log, no WASI. Without stdio, console.* goes nowhere
  // (use log); without clocks and random, Date and Math.random are fixed at build time.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
writeFileSync(out, component);
